package transcript

import (
	"bytes"
	"strings"
	"testing"
)

// TestTextLines: client bytes become C: lines where they are text lines,
// C! strings otherwise, with placeholders where they stand, and literal
// "${" cut so that the parser does not read a placeholder there; the
// parser gives the bytes back.
func TestTextLines(t *testing.T) {
	mark := func(at int) edit { return edit{at, at, []byte(markPlaceholder)} }
	for _, tc := range []struct {
		in     string
		places []edit
		want   []string
	}{
		{"HELO c\r\n", nil, []string{"C: HELO c"}},
		{"\r\n", []edit{mark(0)}, []string{"C: ${mark}"}},
		{"a\r\nb\r\n", []edit{mark(3)}, []string{"C: a", "C: ${mark}b"}},
		{"RCPT TO:<bob@example.net>\r\n", []edit{{9, 24, []byte("${rcpt}")}}, []string{"C: RCPT TO:<${rcpt}>"}},
		{"", []edit{mark(0)}, []string{`C! "${mark}"`}},
		{"x", []edit{mark(1)}, []string{`C! "x${mark}"`}},
		{"one\nlf\r\n", []edit{mark(0)}, []string{`C! "${mark}one\nlf\r\n"`}},
		{"cost ${x}\r\n", nil, []string{`C! "cost $" + "{x}\r\n"`}},
		{"$${{\r\n", nil, []string{`C! "$$" + "{{\r\n"`}},
		{"$\r\n", nil, []string{"C: $"}},
		{"{x}\r\n", []edit{mark(0)}, []string{"C: ${mark}{x}"}},
		{"$\r\n", []edit{mark(1)}, []string{"C: $${mark}"}},
		// Taken out in-process, ${from} would leave "${" between "$" and "{".
		{"$x{\r\n", []edit{{1, 2, []byte("${from}")}}, []string{`C! "$${from}" + "{\r\n"`}},
		{"ends with space \r\n", []edit{mark(0)}, []string{`C! "${mark}ends with space \r\n"`}},
	} {
		got := textLines([]byte(tc.in), tc.places)
		if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
			t.Errorf("textLines(%q, %q) = %q, want %q", tc.in, tc.places, got, tc.want)
			continue
		}
		// As D: and D! lines, which may be empty, unlike C! ones.
		var src strings.Builder
		src.WriteString("# c\nref: r\nS: 220\n\n== delivery\nmail: <>\n")
		for _, l := range got {
			src.WriteString("D" + l[1:] + "\n")
		}
		tr, err := Parse("t.txt", []byte(src.String()))
		if err != nil {
			t.Errorf("%q: %v\n%s", tc.in, err, src.String())
			continue
		}
		var back []byte
		for _, p := range tr.Deliveries[0].Data {
			back = append(back, p.Exact...)
		}
		if want := string(segmentsBytes(tc.in, tc.places)); string(back) != want {
			t.Errorf("%q: parsed back as %q, want %q", tc.in, back, want)
		}
	}
}

// segmentsBytes is what the in-process parser makes of in with places:
// addresses as DefaultVars has them, ${mark} empty.
func segmentsBytes(in string, places []edit) []byte {
	var out []byte
	for _, s := range segments([]byte(in), places) {
		if !s.placeholder {
			out = append(out, s.data...)
			continue
		}
		switch string(s.data) {
		case "${from}":
			out = append(out, DefaultVars.From...)
		case "${rcpt}":
			out = append(out, DefaultVars.Rcpt...)
		}
	}
	return out
}

// TestWritePlaceholders: Write puts placeholders into any transcript, a
// parsed one included, and the result parses back to the same transcript;
// the header keeps a parsed file's order, while the level:, profile: and
// sink: fields a program adds come first.
func TestWritePlaceholders(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string // a transcript file
		edit func(*Transcript)
		want []string // in Write's output
		not  []string
	}{{
		name: "written out",
		in: `# c
ref: r
needs: PIPELINING
level: SHOULD

S: 220
C: EHLO c
S: 250
C: MAIL FROM:<alice@example.org>
C: RCPT TO:<carol@example.net>
C: RCPT TO:<dave@example.net>
C: DATA
S: 250
S: 250
S: 550
S: 354
C: Subject: x
C:
C: MAIL FROM:<alice@example.org>
C: .
S: 250

== delivery
mail: <alice@example.org> BODY=8BITMIME
rcpt: <carol@example.net>
D: Subject: x
D:
D: MAIL FROM:<alice@example.org>
`,
		want: []string{"ref: r\nneeds: PIPELINING\nlevel: SHOULD\n\n",
			"C: MAIL FROM:<${from}>\nC: RCPT TO:<${rcpt2}>\nC: RCPT TO:<dave@example.net>\n",
			"S: 354\nC: ${mark}Subject: ${tag}x\nC:\nC: MAIL FROM:<alice@example.org>\n",
			"mail: <${from}> BODY=8BITMIME\nrcpt: <${rcpt2}>\nD: ${mark}Subject: ${tag}x\nD:\nD: MAIL FROM:<alice@example.org>\n"},
	}, {
		name: "program's header",
		in:   "# c\nref: r\nneeds: SIZE\n\nS: 220\n",
		edit: func(t *Transcript) {
			t.Header = append([]Field{{Key: "tls", Value: "starttls"}}, t.Header...)
			t.Header = append(t.Header, Field{Key: "sink", Value: "yes"}, Field{Key: "level", Value: "MUST"})
		},
		want: []string{"ref: r\nsink: yes\nlevel: MUST\ntls: starttls\nneeds: SIZE\n\n"},
	}, {
		name: "no placeholder before the 354",
		in: `# c
ref: r

S: 220
C: HELO c
S: 250
C: MAIL FROM:<alice@example.org>
S: 250
C: RCPT TO:<bob@example.net>
S: 250
C: DATA
S: 451
C: Subject: not a message
C: .
S: 500
`,
		want: []string{"C: Subject: not a message\nC: .\n"},
		not:  []string{"${mark}", "${tag}"},
	}, {
		name: "parsed placeholders",
		in: `# c
ref: r

S: 220
C: EHLO c
S: 250
C: MAIL FROM:<${from}>
S: 250
C: RCPT TO:<${rcpt}>
S: 250
C: BDAT ${mark+3} LAST
C! "${mark}a$" + "{b}"
S: 250

== delivery
mail: <${from}>
rcpt: <${rcpt}>
D! "${mark}a$" + "{b}"
`,
		want: []string{"C: BDAT ${mark+3} LAST\nC! \"${mark}a$\" + \"{b}\"\n", "rcpt: <${rcpt}>\nD! \"${mark}a$\" + \"{b}\"\n"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			tr, err := Parse("w.txt", []byte(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if tc.edit != nil {
				tc.edit(tr)
			}
			var b bytes.Buffer
			if err := Write(&b, tr); err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.want {
				if !strings.Contains(b.String(), w) {
					t.Errorf("no %q in\n%s", w, b.String())
				}
			}
			for _, w := range tc.not {
				if strings.Contains(b.String(), w) {
					t.Errorf("%q in\n%s", w, b.String())
				}
			}
			back, err := Parse("w.txt", b.Bytes())
			if err != nil {
				t.Fatalf("%v\n%s", err, b.String())
			}
			if tc.edit == nil && !sameTranscript(tr, back) {
				t.Errorf("round trip changed the transcript:\n%s", b.String())
			}
		})
	}
}

// TestWriteOrClosed: "closed" as an alternative to a reply survives Write.
func TestWriteOrClosed(t *testing.T) {
	tr, err := Parse("c.txt", []byte("# c\nref: r\nS: 220\nC: NOOP\nS: 503|5xx|closed 5.5.1 no\n"))
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	Write(&b, tr)
	if !strings.Contains(b.String(), "\nS: 503|5xx|closed 5.5.1 no\n") {
		t.Errorf("no closed alternative in\n%s", b.String())
	}
	back, err := Parse("c.txt", b.Bytes())
	if err != nil || !back.Steps[len(back.Steps)-1].Reply.OrClosed {
		t.Errorf("parsed back: %v, %+v", err, back)
	}
}
