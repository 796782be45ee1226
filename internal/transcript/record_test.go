package transcript

import (
	"bytes"
	"strconv"
	"strings"
	"testing"
)

// chunksOf makes a recording from alternating client and server reads:
// "C:" and "S:" prefixes say whose, "TLS" stands where TLS started.
func chunksOf(parts ...string) []Chunk {
	var chunks []Chunk
	for _, p := range parts {
		switch {
		case p == "TLS":
			chunks = append(chunks, Chunk{StartTLS: true})
		case strings.HasPrefix(p, "C:"):
			chunks = append(chunks, Chunk{FromClient: true, Data: []byte(p[2:])})
		default:
			chunks = append(chunks, Chunk{Data: []byte(strings.TrimPrefix(p, "S:"))})
		}
	}
	return chunks
}

// remoteVars are placeholder values as smtpconform sets them, each unlike
// the in-process one.
var remoteVars = Vars{From: "postmaster@mx.test", Rcpt: "r1@mx.test", Rcpt2: "r2@mx.test", Refused: "no@mx.test",
	User: "u", Password: "p", Run: "R"}

const remoteMark = "X-Smtpconform: rec; run=R\r\n"

// TestFromRecordingPlaceholders: the recorder writes the addresses of
// DefaultVars as placeholders in command lines and deliveries, ${mark} at
// the start of each message and ${tag} in its Subject, "level: MUST", and
// "sink: yes" when an accepted address has no placeholder. In-process the
// file replays the recorded bytes exactly; with smtpconform's values the
// addresses are the given ones, each message is marked, and a BDAT size
// counts the mark.
func TestFromRecordingPlaceholders(t *testing.T) {
	const greet, ehlo = "S:220 mx\r\n", "S:250-mx\r\n250 PIPELINING\r\n"
	for _, tc := range []struct {
		name  string
		parts []string
		want  []string // in the file
		not   []string // not in the file
		sink  bool
		// remote: in the client's bytes with remoteVars; remoteNot: not.
		remote, remoteNot []string
		unmarked          bool // the message gets no ${mark}
	}{{
		name: "pipelined envelope and DATA",
		parts: []string{greet, "C:EHLO c\r\n", ehlo,
			"C:MAIL FROM:<alice@example.org>\r\nRCPT TO:<bob@example.net>\r\nRCPT TO:<carol@example.net>\r\nDATA\r\n",
			"S:250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n",
			"C:From: alice@example.org\r\nSubject: hi\r\nsubject: second\r\n\r\nMAIL FROM:<alice@example.org>\r\nSubject: body\r\n.\r\n",
			"S:250 ok\r\n", "C:QUIT\r\n", "S:221 bye\r\n"},
		want: []string{"ref: r\nlevel: MUST\nneeds: PIPELINING\n\n",
			"C: MAIL FROM:<${from}>\nC: RCPT TO:<${rcpt}>\nC: RCPT TO:<${rcpt2}>\nC: DATA\n",
			"S: 354\nC: ${mark}From: alice@example.org\nC: Subject: ${tag}hi\nC: subject: second\nC:\nC: MAIL FROM:<alice@example.org>\nC: Subject: body\nC: .\n",
			"mail: <${from}>\nrcpt: <${rcpt}>\nrcpt: <${rcpt2}>\nD: ${mark}From: alice@example.org\nD: Subject: ${tag}hi\nD: subject: second\n"},
		not:    []string{"sink:"},
		remote: []string{"MAIL FROM:<postmaster@mx.test>\r\nRCPT TO:<r1@mx.test>\r\nRCPT TO:<r2@mx.test>\r\n", "\x00" + remoteMark + "From: alice@example.org\r\nSubject: [smtpconform] hi\r\n", "\r\nMAIL FROM:<alice@example.org>\r\nSubject: body\r\n"},
	}, {
		name: "other address accepted",
		parts: []string{greet, "C:HELO c\r\n", "S:250 mx\r\n", "C:MAIL FROM:<alice@example.org>\r\n", "S:250 ok\r\n",
			"C:RCPT TO:<postmaster@example.net>\r\n", "S:250 ok\r\n", "C:QUIT\r\n", "S:221 bye\r\n"},
		want: []string{"ref: r\nlevel: MUST\nsink: yes\n\n", "C: MAIL FROM:<${from}>\n", "C: RCPT TO:<postmaster@example.net>\n"},
		sink: true,
	}, {
		name: "other address refused",
		parts: []string{greet, "C:HELO c\r\n", "S:250 mx\r\n", "C:MAIL FROM:<>\r\n", "S:250 ok\r\n",
			"C:RCPT TO:<nobody@example.net>\r\n", "S:550 no\r\n", "C:RCPT TO:<BOB@example.net>\r\n", "S:550 no\r\n"},
		want: []string{"C: MAIL FROM:<>\n", "C: RCPT TO:<nobody@example.net>\n", "C: RCPT TO:<BOB@example.net>\n"},
		not:  []string{"sink:"},
	}, {
		name: "source route and parameters",
		parts: []string{greet, "C:EHLO c\r\n", "S:250 mx\r\n", "C:mail from:<@relay.example:alice@example.org> size=12\r\n", "S:250 ok\r\n",
			"C:RCPT TO:<bob@example.net> NOTIFY=NEVER\r\n", "S:250 ok\r\n", "C:DATA\r\n", "S:354 go\r\n", "C:no header\r\n.\r\n", "S:250 ok\r\n"},
		want: []string{"C: mail from:<@relay.example:${from}> size=12\n", "C: RCPT TO:<${rcpt}> NOTIFY=NEVER\n", "C: ${mark}no header\n",
			"mail: <${from}> SIZE=12\nrcpt: <${rcpt}> NOTIFY=NEVER\nD: ${mark}no header\n"},
		not:    []string{"${tag}", "sink:"},
		remote: []string{"mail from:<@relay.example:postmaster@mx.test> size=12\r\n", remoteMark + "no header\r\n.\r\n"},
	}, {
		name: "BDAT chunks",
		parts: []string{greet, "C:EHLO c\r\n", "S:250 mx\r\n", "C:MAIL FROM:<alice@example.org>\r\n", "S:250 ok\r\n",
			"C:RCPT TO:<bob@example.net>\r\n", "S:250 ok\r\n", "C:BDAT 12\r\nSubject: x\r\n", "S:250 ok\r\n",
			"C:BDAT 2 LAST\r\n\r\n", "S:250 ok\r\n", "C:QUIT\r\n", "S:221 bye\r\n"},
		want: []string{"C: BDAT ${mark+12}\nC: ${mark}Subject: x\n", "C: BDAT 2 LAST\nC:\n", "D: ${mark}Subject: x\nD:\n"},
		not:  []string{"${tag}"},
		// The first chunk's size counts the mark; the second is as sent.
		remote: []string{"BDAT " + strconv.Itoa(12+len(remoteMark)) + "\r\n" + remoteMark + "Subject: x\r\n", "BDAT 2 LAST\r\n\r\n"},
	}, {
		name: "BDAT with a size written otherwise",
		parts: []string{greet, "C:EHLO c\r\n", "S:250 mx\r\n", "C:MAIL FROM:<alice@example.org>\r\n", "S:250 ok\r\n",
			"C:RCPT TO:<bob@example.net>\r\n", "S:250 ok\r\n", "C:BDAT 03 LAST\r\nabc", "S:250 ok\r\n"},
		want:      []string{"C: BDAT 03 LAST\n", "C! \"abc\"\n", "D! \"abc\"\n"},
		not:       []string{"${mark"},
		remoteNot: []string{"X-Smtpconform"},
		unmarked:  true,
	}, {
		name: "empty message and a dot-stuffed first line",
		parts: []string{greet, "C:HELO c\r\n", "S:250 mx\r\n", "C:MAIL FROM:<alice@example.org>\r\n", "S:250 ok\r\n",
			"C:RCPT TO:<bob@example.net>\r\n", "S:250 ok\r\n", "C:DATA\r\n", "S:354 go\r\n", "C:.\r\n", "S:250 ok\r\n",
			"C:MAIL FROM:<alice@example.org>\r\n", "S:250 ok\r\n", "C:RCPT TO:<bob@example.net>\r\n", "S:250 ok\r\n",
			"C:DATA\r\n", "S:354 go\r\n", "C:..dot\r\nSubject:\r\n\r\n.\r\n", "S:250 ok\r\n"},
		want:   []string{"S: 354\nC: ${mark}.\n", "D! \"${mark}\"\n", "S: 354\nC: ${mark}..dot\nC: Subject:${tag}\n", "D: ${mark}.dot\nD: Subject:${tag}\n"},
		remote: []string{"DATA\r\n\x00" + remoteMark + ".\r\n", remoteMark + "..dot\r\nSubject:[smtpconform] \r\n"},
	}, {
		name: "literal ${ in the message",
		parts: []string{greet, "C:HELO c\r\n", "S:250 mx\r\n", "C:MAIL FROM:<alice@example.org>\r\n", "S:250 ok\r\n",
			"C:RCPT TO:<bob@example.net>\r\n", "S:250 ok\r\n", "C:DATA\r\n", "S:354 go\r\n",
			"C:Subject: ${tag} costs ${x}\r\n\r\n${mark}${\r\n.\r\n", "S:250 ok\r\n"},
		want: []string{`C! "${mark}Subject: ${tag}$" + "{tag} costs $" + "{x}\r\n"`, "C:\nC! \"$\" + \"{mark}$\" + \"{\\r\\n\"\nC: .\n",
			`D! "${mark}Subject: ${tag}$" + "{tag} costs $" + "{x}\r\n"`},
		remote: []string{remoteMark + "Subject: [smtpconform] ${tag} costs ${x}\r\n\r\n${mark}${\r\n.\r\n"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			chunks := chunksOf(tc.parts...)
			tr := FromRecording("rec.txt", chunks, RecordOptions{})
			tr.Comment, tr.Ref = "c", "r"
			var b bytes.Buffer
			if err := Write(&b, tr); err != nil {
				t.Fatal(err)
			}
			file := b.String()
			for _, w := range tc.want {
				if !strings.Contains(file, w) {
					t.Errorf("no %q in\n%s", w, file)
				}
			}
			for _, w := range tc.not {
				if strings.Contains(file, w) {
					t.Errorf("%q in\n%s", w, file)
				}
			}
			if v, _ := tr.Get("sink"); (v == "yes") != tc.sink {
				t.Errorf("sink: %q, want %v", v, tc.sink)
			}

			// In-process: the recorded bytes, exactly.
			back, err := Parse("rec.txt", b.Bytes())
			if err != nil {
				t.Fatalf("%v\n%s", err, file)
			}
			var recorded []byte
			for _, c := range chunks {
				if c.FromClient {
					recorded = append(recorded, c.Data...)
				}
			}
			if got := sent(back, ""); got != string(recorded) {
				t.Errorf("in-process replay sends\n%q\nrecorded\n%q", got, recorded)
			}
			if !sameTranscript(tr, back) {
				t.Errorf("Parse(Write(t)) differs from t:\n%s", file)
			}

			// With smtpconform's values.
			remote, err := ParseVars("rec.txt", b.Bytes(), remoteVars)
			if err != nil {
				t.Fatal(err)
			}
			got := sent(remote, "\x00")
			for _, w := range tc.remote {
				if !strings.Contains(got, w) {
					t.Errorf("remote replay sends no %q in\n%q", w, got)
				}
			}
			for _, w := range tc.remoteNot {
				if strings.Contains(got, w) {
					t.Errorf("remote replay sends %q in\n%q", w, got)
				}
			}
			for _, d := range remote.Deliveries {
				if tc.unmarked {
					break
				}
				if len(d.Data) == 0 || !bytes.HasPrefix(d.Data[0].Exact, []byte(remoteMark)) {
					t.Errorf("remote delivery %q does not start with the mark", d.Data)
				}
			}
		})
	}
}

// sent returns the bytes t's client sends, with sep after each Expect
// step.
func sent(t *Transcript, sep string) string {
	var b strings.Builder
	for _, s := range t.Steps {
		switch s.Kind {
		case Send:
			b.Write(s.Data)
		case Expect:
			b.WriteString(sep)
		}
	}
	return b.String()
}
