package transcript

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
)

const example = `# A message with a bare LF is refused after its end.
ref: RFC 5321 2.3.8
max-recipients: 2
needs: PIPELINING

# the session
S: 220
C: EHLO client.example
S: 250
S+ PIPELINING
S- STARTTLS
C: MAIL FROM:<a@example.org> BODY=8BITMIME
2* C: RCPT TO:<b@example.org>
C: DATA
S: 250 2.x.x
2* S: 250|251 2.1.x
S: 354
C! "x\n" * 2 + ".\r\n"
S: 550 5.x.x Bare
segment
pause 10ms
silent for 10ms
C: QUIT
S: 221
closed within 1s
close

== delivery
hello: client.example
tls: yes
auth: jane
mail: <a@example.org> BODY=8BITMIME
2* rcpt: <b@example.org>
D: Subject: hi
D:
D! "body\r\n"
D~ Received: .*
`

func TestParseExample(t *testing.T) {
	tr, err := Parse("example.txt", []byte(example))
	if err != nil {
		t.Fatal(err)
	}
	if tr.Comment != "A message with a bare LF is refused after its end." || tr.Ref != "RFC 5321 2.3.8" {
		t.Errorf("comment %q, ref %q", tr.Comment, tr.Ref)
	}
	if v, _ := tr.Get("max-recipients"); v != "2" {
		t.Errorf("max-recipients = %q", v)
	}
	var kinds []string
	for _, s := range tr.Steps {
		kinds = append(kinds, s.Kind.String())
	}
	want := "expect send expect contains lacks send send send send expect expect expect expect send expect segment pause silent send expect closed close"
	if got := strings.Join(kinds, " "); got != want {
		t.Errorf("steps:\n got %s\nwant %s", got, want)
	}
	if got := string(tr.Steps[13].Data); got != "x\nx\n.\r\n" {
		t.Errorf("C! gave %q", got)
	}
	if len(tr.Steps[2].Reply.Lines) != 1 {
		t.Errorf("EHLO reply pattern %v", tr.Steps[2].Reply)
	}
	d := tr.Deliveries
	if len(d) != 1 || d[0].TLS != "yes" || d[0].Auth != "jane" || len(d[0].Rcpts) != 2 || string(d[0].Data[0].Exact) != "Subject: hi\r\n\r\nbody\r\n" || d[0].Data[1].Line == nil {
		t.Errorf("deliveries %+v", d)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", "x.txt:0: missing first line"},
		{"ref: x\n", "x.txt:1: the first line must be a comment"},
		{"# c\nS: 220\n", "x.txt:2: want a ref: line"},
		{"# c\nref: r\n", "x.txt:2: no session"},
		{"# c\nref: r\nmax-foo: 1\nS: 220\n", `x.txt:3: unknown header key "max-foo"`},
		{"# c\nref: r\nS: 220\nhostname: x\n", "x.txt:4: unknown session line"},
		{"# c\nref: r\nS: 22\n", `x.txt:3: bad reply code "22"`},
		{"# c\nref: r\nS: 250-\nC: QUIT\n", "x.txt:4: multiline reply not finished"},
		{"# c\nref: r\nS: 250-\n", "x.txt:3: multiline reply not finished"},
		{"# c\nref: r\nC! hi\n", "x.txt:3: want a Go double-quoted"},
		{"# c\nref: r\nC! \"a\" \"b\"\n", `x.txt:3: want "+" or the end`},
		{"# c\nref: r\npause 2\n", `x.txt:3: bad duration "2"`},
		{"# c\nref: r\nclosed 2s\n", `x.txt:3: want "closed within DURATION"`},
		{"# c\nref: r\nS+ x\n", "x.txt:3: S+ must follow an S: line"},
		{"# c\nref: r\nS: 220\n== delivery\nrcpt: <a@b>\n", "x.txt:4: delivery without mail"},
		{"# c\nref: r\nS: 220\n== delivery\nfrom: <a@b>\n", "x.txt:5: want hello:"},
		{"# c\r\nref: r\n", "x.txt:1: CR in file"},
	} {
		_, err := Parse("x.txt", []byte(tc.in))
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("Parse(%q) = %v, want %q...", tc.in, err, tc.want)
		}
	}
}

func TestMatch(t *testing.T) {
	for _, tc := range []struct {
		pattern string
		reply   []string
		ignore  bool
		want    bool
	}{
		{"250", []string{"250-a", "250 b"}, false, true},
		{"250", []string{"250-a", "251 b"}, false, false},
		{"2xx 2.1.x OK", []string{"250 2.1.5 OK fine"}, false, true},
		{"250 2.1.0", []string{"250 2.1.5 OK"}, false, false},
		{"250 2.1.0", []string{"250 OK"}, true, true},
		{"250 ^OK", []string{"250 2.0.0 OK"}, false, false},
		{"250 ^OK", []string{"250 2.0.0 OK"}, true, true},
		{"503|554", []string{"554 no"}, false, true},
		{"221", []string{"221"}, false, true},
	} {
		tr, err := Parse("m.txt", []byte("# c\nref: r\nS: "+tc.pattern+"\n"))
		if err != nil {
			t.Fatal(err)
		}
		if got := tr.Steps[0].Reply.Match(tc.reply, tc.ignore); got != tc.want {
			t.Errorf("%q matching %q (ignore %v) = %v", tc.pattern, tc.reply, tc.ignore, got)
		}
	}
}

func TestWriteRoundTrip(t *testing.T) {
	tr, err := Parse("example.txt", []byte(example))
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := Write(&b, tr); err != nil {
		t.Fatal(err)
	}
	back, err := Parse("example.txt", b.Bytes())
	if err != nil {
		t.Fatalf("%v\n%s", err, b.String())
	}
	if !sameTranscript(tr, back) {
		t.Errorf("round trip changed the transcript:\n%s", b.String())
	}
}

// sameTranscript compares two transcripts by meaning: line numbers aside,
// and with adjacent sends merged, since they go out as one write anyway.
func sameTranscript(a, b *Transcript) bool {
	return canonical(a) == canonical(b)
}

func canonical(t *Transcript) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%q %q\n", t.Comment, t.Ref)
	for _, f := range t.Header {
		fmt.Fprintf(&b, "%q: %q\n", f.Key, f.Value)
	}
	var send []byte
	for _, s := range t.Steps {
		if s.Kind == Send {
			send = append(send, s.Data...)
			continue
		}
		if send != nil {
			fmt.Fprintf(&b, "send %q\n", send)
			send = nil
		}
		fmt.Fprintf(&b, "%q\n", stepLines(s))
	}
	fmt.Fprintf(&b, "send %q\n", send)
	var w bytes.Buffer
	Write(&w, &Transcript{Comment: "c", Ref: "r", Deliveries: t.Deliveries})
	b.Write(w.Bytes())
	return b.String()
}

func TestFromRecording(t *testing.T) {
	chunks := []Chunk{
		{FromClient: false, Data: []byte("220 mx ESMTP\r\n")},
		{FromClient: true, Data: []byte("EHLO c\r\n")},
		{FromClient: false, Data: []byte("250-mx\r\n250 PIPELINING\r\n")},
		{FromClient: true, Data: []byte("MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nRCPT TO:<c@y>\r\nDATA\r\n")},
		{FromClient: false, Data: []byte("250 2.1.0 ok\r\n250 2.1.5 ok\r\n550 5.1.1 no\r\n354 go\r\n")},
		{FromClient: true, Data: []byte("Hi\r\n..dot\r\n.\r")},
		{FromClient: true, Data: []byte("\nQUIT\r\n")},
		{FromClient: false, Data: []byte("250 2.0.0 queued\r\n221 2.0.0 bye\r\n")},
	}
	tr := FromRecording("rec.txt", chunks, RecordOptions{})
	tr.Comment, tr.Ref = "A recorded session.", "recorded"
	var b bytes.Buffer
	Write(&b, tr)
	want := `# A recorded session.
ref: recorded
level: MUST
sink: yes
needs: PIPELINING

S: 220
C: EHLO c
S: 250
C: MAIL FROM:<a@x>
C: RCPT TO:<b@y>
C: RCPT TO:<c@y>
C: DATA
2* S: 250 2.x.x
S: 550 5.x.x
S: 354
C: ${mark}Hi
C: ..dot
C: .
C: QUIT
S: 250 2.x.x
S: 221 2.x.x

== delivery
hello: c
mail: <a@x>
rcpt: <b@y>
D: ${mark}Hi
D: .dot
`
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
	if _, err := Parse("rec.txt", b.Bytes()); err != nil {
		t.Error(err)
	}
}

// TestFromRecordingMasked: a session with STARTTLS, AUTH LOGIN with an
// initial response (a refused password, then an accepted one), and an LMTP
// message in BDAT chunks: the passwords are replaced, the starttls event
// stands where TLS began, bytes sent in the clear after STARTTLS are not
// commands, and the message is delivered once for its two replies.
func TestFromRecordingMasked(t *testing.T) {
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	chunks := []Chunk{
		{Data: []byte("220 mx LMTP\r\n")},
		{FromClient: true, Data: []byte("LHLO c\r\n")},
		{Data: []byte("250-mx\r\n250 STARTTLS\r\n")},
		{FromClient: true, Data: []byte("STARTTLS\r\nNOOP\r\n")},
		{Data: []byte("220 2.0.0 go\r\n")},
		{StartTLS: true},
		{FromClient: true, Data: []byte("LHLO c\r\nAUTH LOGIN " + b64("jane") + "\r\n")},
		{Data: []byte("250 mx\r\n334 " + b64("Password:") + "\r\n")},
		{FromClient: true, Data: []byte(b64("guess") + "\r\n")},
		{Data: []byte("535 5.7.8 no\r\n")},
		{FromClient: true, Data: []byte("AUTH LOGIN\r\n")},
		{Data: []byte("334 " + b64("Username:") + "\r\n")},
		{FromClient: true, Data: []byte(b64("jane") + "\r\n")},
		{Data: []byte("334 " + b64("Password:") + "\r\n")},
		{FromClient: true, Data: []byte(b64("top") + "\r\n")},
		{Data: []byte("235 2.7.0 ok\r\n")},
		{FromClient: true, Data: []byte("MAIL FROM:<a@x> body=BINARYMIME\r\n")},
		{Data: []byte("250 2.1.0 ok\r\n")},
		{FromClient: true, Data: []byte("RCPT TO:<b@y>\r\nRCPT TO:<c@y>\r\nBDAT 3\r\na\nb")},
		{Data: []byte("250 2.1.5 ok\r\n250 2.1.5 ok\r\n250 2.0.0 ok\r\n")},
		{FromClient: true, Data: []byte("BDAT 2 LAST\r\n\r\n")},
		{Data: []byte("250 2.0.0 ok\r\n452 4.2.2 full\r\n")},
	}
	tr := FromRecording("rec.txt", chunks, RecordOptions{LMTP: true, TLS: true, Password: "pw"})
	tr.Comment, tr.Ref = "A recorded session.", "recorded"
	var b bytes.Buffer
	Write(&b, tr)
	for _, secret := range []string{b64("top"), b64("guess")} {
		if strings.Contains(b.String(), secret) {
			t.Errorf("the transcript holds %q:\n%s", secret, b.String())
		}
	}
	for _, want := range []string{"C: NOOP\nS: 220 2.x.x\nstarttls\n", "C: " + b64(WrongPassword) + "\nS: 535", "C: " + b64("pw") + "\nS: 235",
		"needs: AUTH=LOGIN BINARYMIME CHUNKING PIPELINING\nauth: jane:pw\n", "tls: yes\nauth: jane\nmail: <a@x> BODY=BINARYMIME\n",
		"C: BDAT ${mark+3}\nC! \"${mark}a\\nb\"\n", "rcpt: <c@y>\nD! \"${mark}a\\nb\\r\\n\"\n"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("no %q in\n%s", want, b.String())
		}
	}
	if len(tr.Deliveries) != 1 {
		t.Errorf("%d deliveries, want 1", len(tr.Deliveries))
	}
	if _, err := Parse("rec.txt", b.Bytes()); err != nil {
		t.Error(err)
	}
}

// TestCheckDeliveriesTLSAuth: tls: and auth: are checked when given.
func TestCheckDeliveriesTLSAuth(t *testing.T) {
	tr, err := Parse("x.txt", []byte("# c\nref: r\nS: 220\n\n== delivery\ntls: yes\nauth: jane\nmail: <a@b.example>\nD: x\n"))
	if err != nil {
		t.Fatal(err)
	}
	msg := Message{TLS: true, Auth: "jane", Mail: "<a@b.example>", Data: []byte("x\r\n")}
	if err := CheckDeliveries(tr, []Message{msg}); err != nil {
		t.Errorf("matching delivery: %v", err)
	}
	plain, other := msg, msg
	plain.TLS, other.Auth = false, "joe"
	for _, m := range []Message{plain, other} {
		if err := CheckDeliveries(tr, []Message{m}); err == nil {
			t.Errorf("delivery %+v passed", m)
		}
	}
}
