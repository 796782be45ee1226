package transcript

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

// TestVars: each placeholder is filled where the README says, values are
// literal in S: patterns, ${mark+N} counts the mark, and an unknown
// placeholder does not parse.
func TestVars(t *testing.T) {
	v := Vars{From: "a@x.example", Rcpt: "b@y.example", Rcpt2: "c@y.example", Refused: "n@y.example",
		User: "u", Password: "p", Run: "R1"}
	src := `# c.
ref: r
S: 220
C: MAIL FROM:<${from}>
S: 250 ${rcpt}
C! "BDAT ${mark+3} LAST\r\n${mark}one"
C: RCPT TO:<${rcpt2}> ${refused}
C: AUTH PLAIN ${plain}
C: ${user64} ${password64} ${user}:${password}
C: Subject: ${tag}x

== delivery
mail: <${from}>
rcpt: <${rcpt}>
D! "${mark}one"
`
	tr, err := ParseVars("case_name.txt", []byte(src), v)
	if err != nil {
		t.Fatal(err)
	}
	mark := "X-Smtpconform: case_name; run=R1\r\n"
	var sent []string
	for _, s := range tr.Steps {
		if s.Kind == Send {
			sent = append(sent, string(s.Data))
		}
	}
	want := []string{
		"MAIL FROM:<a@x.example>\r\n",
		"BDAT 37 LAST\r\n" + mark + "one",
		"RCPT TO:<c@y.example> n@y.example\r\n",
		"AUTH PLAIN AHUAcA==\r\n",
		"dQ== cA== u:p\r\n",
		"Subject: [smtpconform] x\r\n",
	}
	if len(mark)+3 != 37 || strings.Join(sent, "|") != strings.Join(want, "|") {
		t.Errorf("sent %q\nwant %q", sent, want)
	}
	re := tr.Steps[2].Reply.Lines[0].Text
	if re == nil || !re.MatchString("b@y.example") || re.MatchString("b@yxexample") {
		t.Errorf("S: pattern %v does not match the address literally", re)
	}
	d := tr.Deliveries[0]
	if d.Mail != "<a@x.example>" || d.Rcpts[0] != "<b@y.example>" || string(d.Data[0].Exact) != mark+"one" {
		t.Errorf("delivery %+v", d)
	}
	if !tr.Uses.Rcpt2 || !tr.Uses.Refused || !tr.Uses.Mark || !tr.Uses.Account {
		t.Errorf("uses %+v", tr.Uses)
	}

	// In-process: the suite's addresses, and no mark.
	tr, err = Parse("case_name.txt", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if got := string(tr.Steps[3].Data); got != "BDAT 3 LAST\r\none" {
		t.Errorf("in-process BDAT line %q", got)
	}
	if got := string(tr.Steps[1].Data); got != "MAIL FROM:<alice@example.org>\r\n" {
		t.Errorf("in-process MAIL line %q", got)
	}

	for _, bad := range []string{"C: ${frob}\n", "C: ${mark+x}\n", "C! \"${from\"\n", "C: ${rcpt\n"} {
		if _, err := Parse("x.txt", []byte("# c.\nref: r\n"+bad)); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
	tr, _ = Parse("x.txt", []byte("# c.\nref: r\nS: 220\n"))
	if tr.Uses != (Uses{}) {
		t.Errorf("a case without placeholders uses %+v", tr.Uses)
	}
	for _, bad := range []string{"level: MAY\n", "profile: lax\n", "sink: no\n"} {
		if _, err := Parse("x.txt", []byte("# c.\nref: r\n"+bad+"S: 220\n")); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestCheckAddress(t *testing.T) {
	for addr, ok := range map[string]bool{
		"me@example.com": true, "a.b+c@sub.example.org": true, "jörg@bücher.example": true,
		"": false, "me": false, "@example.com": false, "me@": false, "a@b@c": false,
		"me @example.com": false, `"me"@example.com`: false, "me@[192.0.2.1]": false,
		"<me@example.com>": false, "me@example.com\r\nRCPT": false, `a\b@example.com`: false,
	} {
		if err := CheckAddress(addr); (err == nil) != ok {
			t.Errorf("CheckAddress(%q) = %v, want ok %v", addr, err, ok)
		}
	}
}

// TestReplayQuit: with Options.Quit the session ends with QUIT after a
// failed step too.
func TestReplayQuit(t *testing.T) {
	client, server := net.Pipe()
	got := make(chan string, 1)
	go func() {
		defer server.Close()
		br := bufio.NewReader(server)
		server.Write([]byte("220 hi\r\n"))
		line, _ := br.ReadString('\n') // NOOP
		server.Write([]byte("500 no\r\n"))
		line, _ = br.ReadString('\n')
		got <- line
		server.Write([]byte("221 bye\r\n"))
	}()
	tr, err := Parse("x.txt", []byte("# c.\nref: r\nS: 220\nC: NOOP\nS: 250\n"))
	if err != nil {
		t.Fatal(err)
	}
	err = Replay(client, tr, Options{Quit: true, ReplyTimeout: 5 * time.Second})
	if err == nil {
		t.Fatal("a 500 for NOOP passed")
	}
	select {
	case line := <-got:
		if line != "QUIT\r\n" {
			t.Errorf("after the failure the server read %q, want QUIT", line)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no QUIT after the failure")
	}
}

// TestReplayOrClosed: "S: 503|closed" passes when the server hangs up
// there (and the steps after it do not run), and a plain "S: 503" fails.
func TestReplayOrClosed(t *testing.T) {
	hangUp := func() net.Conn {
		client, server := net.Pipe()
		go func() {
			defer server.Close()
			br := bufio.NewReader(server)
			server.Write([]byte("220 hi\r\n"))
			br.ReadString('\n')
			server.Write([]byte("550 bare LF\r\n"))
		}()
		return client
	}
	for src, pass := range map[string]bool{
		"S: 220\nC! \"NOOP\\n\"\nS: 550\nC: RCPT TO:<x@y.example>\nS: 503|closed\nC: QUIT\nS: 221\n": true,
		"S: 220\nC! \"NOOP\\n\"\nS: 550\nC: RCPT TO:<x@y.example>\nS: 503\n":                         false,
		"S: 220\nC! \"NOOP\\n\"\nS: 550|closed\nS: 221\n":                                            false,
		"S: 220\nC! \"NOOP\\n\"\nS: 250|closed\nC: QUIT\nS: 221\n":                                   true, // refused (550), then closed
	} {
		tr, err := Parse("x.txt", []byte("# c.\nref: r\n"+src))
		if err != nil {
			t.Fatal(err)
		}
		err = Replay(hangUp(), tr, Options{ReplyTimeout: 5 * time.Second})
		if (err == nil) != pass {
			t.Errorf("%q: %v, want pass %v", src, err, pass)
		}
	}
	for _, bad := range []string{"S: closed\n", "S: 250|closed-\nS: 250 \n", "2* S: 250|closed\n"} {
		if _, err := Parse("x.txt", []byte("# c.\nref: r\n"+bad)); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestVarsMarkTag(t *testing.T) {
	src := "# c.\nref: r\nC! \"BDAT ${mark+tag+3} LAST\\r\\n${mark}Subject: ${tag}x\\r\\n\"\n"
	for _, v := range []Vars{DefaultVars, {Run: "R"}} {
		tr, err := ParseVars("n.txt", []byte(src), v)
		if err != nil {
			t.Fatal(err)
		}
		data := string(tr.Steps[0].Data)
		head, chunk, _ := strings.Cut(data, "\r\n")
		if want := fmt.Sprintf("BDAT %d LAST", 3+len(chunk)-len("Subject: x\r\n")); head != want {
			t.Errorf("%q: want %q", data, want)
		}
	}
}
