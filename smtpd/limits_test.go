package smtpd

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// Limits, line ends and timeouts: every limit at its boundary and one past
// it, and the session still in step afterwards.

// TestCommandLineLimit: 512 octets with CRLF are accepted, 513 get one 500
// and the next command is read as a command (RFC 5321 4.5.3.1.4).
func TestCommandLineLimit(t *testing.T) {
	c := greeted(t, startServer(t, &Server{}))
	pad := func(n int) string { // NOOP line of n octets including CRLF
		return "NOOP " + strings.Repeat("x", n-len("NOOP ")-2)
	}
	c.do(pad(512), "250")
	c.do(pad(513), "500 5.5.2 Line too long")
	c.do(pad(5000), "500 5.5.2 Line too long") // longer than the read buffer
	c.do("NOOP", "250")

	c2 := greeted(t, startServer(t, &Server{MaxCommandLength: 10000}))
	c2.do(pad(10000), "250")
	c2.do(pad(10001), "500")
	c2.do("NOOP", "250")
}

// TestCommandBareLineEnds: a bare LF or CR does not end a command line
// (RFC 5321 2.3.8); the whole line up to CRLF is refused, so nothing
// smuggled behind it runs. The seed glued such lines to the next.
func TestCommandBareLineEnds(t *testing.T) {
	rec := &recorder{}
	c := greeted(t, startServer(t, &Server{Handler: rec}))
	c.send("NOOP\nMAIL FROM:<a@example.org>\r\n")
	c.expect("500 5.5.2 Bare CR or LF in command")
	c.send("NOOP\rMAIL FROM:<a@example.org>\r\n")
	c.expect("500 5.5.2 Bare CR")
	c.send("NOOP\r\r\n")
	c.expect("500 5.5.2 Bare CR")
	c.do("RCPT TO:<b@example.org>", "503") // no MAIL ran
	c.do("NOOP", "250")
}

// TestMessageLineLimit: a text line of 1000 octets with CRLF is accepted,
// 1001 gets one 500 after the end of data (RFC 5321 4.5.3.1.6). The dot a
// client doubles for transparency does not count: 1001 octets on the wire
// that are 1000 after unstuffing are accepted.
func TestMessageLineLimit(t *testing.T) {
	rec := &recorder{}
	c := greeted(t, startServer(t, &Server{Handler: rec, DisableReceived: true}))
	send := func(line, want string) {
		c.message(line+"\r\nnext line\r\n.\r\n", want)
	}
	send(strings.Repeat("a", 998), "250")
	send(strings.Repeat("a", 999), "500 5.5.2 Line too long")
	send(".."+strings.Repeat("d", 997), "250")                     // 1001 sent, 1000 received
	send(".."+strings.Repeat("d", 998), "500 5.5.2 Line too long") // 1002 sent, 1001 received
	send(strings.Repeat("b", 100000), "500 5.5.2")
	c.do("NOOP", "250")
	msgs := rec.delivered()
	if len(msgs) != 2 || msgs[0].data != strings.Repeat("a", 998)+"\r\nnext line\r\n" ||
		msgs[1].data != "."+strings.Repeat("d", 997)+"\r\nnext line\r\n" {
		t.Fatalf("delivered %d messages", len(msgs))
	}
}

// TestMessageSize: SIZE is advertised; a declared size over the limit gets
// 552 at MAIL; a message over the limit is read to its end and refused 552
// (RFC 1870 6); one at the limit is accepted.
func TestMessageSize(t *testing.T) {
	rec := &recorder{}
	c := greeted(t, startServer(t, &Server{Handler: rec, MaxMessageBytes: 100, DisableReceived: true}))
	c.do("MAIL FROM:<a@example.org> SIZE=101", "552 5.3.4")
	c.do("MAIL FROM:<a@example.org> SIZE=abc", "501 5.5.4")
	c.do("MAIL FROM:<a@example.org> SIZE=999999999999999999999", "501 5.5.4") // 21 digits
	c.do("MAIL FROM:<a@example.org> SIZE=99999999999999999999", "552 5.3.4")  // 20 digits, over uint64
	c.do("MAIL FROM:<a@example.org> SIZE=+1", "501 5.5.4")
	c.do("MAIL FROM:<a@example.org> FOO=BAR", "555 5.5.4")
	c.do("MAIL FROM:<a@example.org> BODY=9BIT", "501 5.5.4")
	c.do("MAIL FROM:<a@example.org> SIZE=100 BODY=8BITMIME", "250")
	c.do("RCPT TO:<b@example.org>", "250")
	c.do("DATA", "354")
	c.send(strings.Repeat("x", 98) + "\r\n.\r\n") // exactly 100 octets
	c.expect("250")
	c.message(strings.Repeat("x", 99)+"\r\n"+strings.Repeat("y\r\n", 10000)+".\r\n", "552 5.3.4")
	c.do("NOOP", "250")
	if n := len(rec.delivered()); n != 1 {
		t.Fatalf("%d messages delivered, want 1", n)
	}
	if got := rec.delivered()[0].env.MailParams; got["SIZE"] != "100" || got["BODY"] != "8BITMIME" {
		t.Fatalf("MailParams %v", got)
	}

	// Parameters need EHLO.
	c2 := dial(t, startServer(t, &Server{}))
	c2.expect("220")
	c2.do("HELO client.example", "250")
	c2.do("MAIL FROM:<a@example.org> SIZE=10", "555")
}

// TestRecipientLimit: 100 recipients are accepted, the 101st gets 452
// (RFC 5321 4.5.3.1.8 and 4.5.3.1.10), and the message still goes to the
// 100.
func TestRecipientLimit(t *testing.T) {
	rec := &recorder{}
	c := greeted(t, startServer(t, &Server{Handler: rec}))
	c.do("MAIL FROM:<a@example.org>", "250")
	for i := 0; i < 100; i++ {
		c.do("RCPT TO:<r"+strings.Repeat("x", i%5)+"@example.org>", "250")
	}
	c.do("RCPT TO:<one.more@example.org>", "452 4.5.3")
	c.do("DATA", "354")
	c.send("x\r\n.\r\n")
	c.expect("250")
	if n := len(rec.delivered()[0].env.Recipients); n != 100 {
		t.Fatalf("%d recipients delivered", n)
	}
}

// TestPathLimits: the path grammar's limits, at and past the boundary.
func TestPathLimits(t *testing.T) {
	c := greeted(t, startServer(t, &Server{}))
	c.do("MAIL FROM:<"+strings.Repeat("l", 64)+"@example.org>", "250")
	c.do("RSET", "250")
	c.do("MAIL FROM:<"+strings.Repeat("l", 65)+"@example.org>", "553 5.1.7")
	c.do("MAIL FROM:<a@b.example>", "250")
	c.do("RCPT TO:<"+strings.Repeat("l", 65)+"@example.org>", "553 5.1.3")
	c.do("RCPT TO:<a@"+strings.Repeat("d.", 130)+"example>", "501 5.1.3") // path over 256
	c.do("RCPT TO:<not an address>", "501 5.1.3")
	c.do("RCPT TO:b@example.org", "501 5.1.3")
	c.do("MAIL FROM:<a@[exec id]>", "503") // the seed ran this; here it is a sequence error
	c.do("RSET", "250")
	c.do("MAIL FROM:<a@[exec id]>", "501 5.1.7")
}

// TestDataBareLineEnds: in message data a bare LF or CR never ends a line
// or the data; by default the message is refused after its real end, and
// AcceptBareLineEnds takes them as content. Each case ends the data only
// at the final CRLF.CRLF: what is smuggled behind a fake end is not run.
func TestDataBareLineEnds(t *testing.T) {
	smuggled := "MAIL FROM:<evil@example.org>\r\nRCPT TO:<victim@example.org>\r\nDATA\r\nforged\r\n"
	for _, fake := range []string{"\n.\n", "\n.\r\n", "\r\n.\n", "\r.\r", "\r.\n", "\n.\r"} {
		for _, accept := range []bool{false, true} {
			rec := &recorder{}
			c := greeted(t, startServer(t, &Server{Handler: rec, AcceptBareLineEnds: accept, DisableReceived: true}))
			c.do("MAIL FROM:<a@example.org>", "250")
			c.do("RCPT TO:<b@example.org>", "250")
			c.do("DATA", "354")
			body := "first" + fake + smuggled + ".\r\n"
			c.send(body)
			if !accept {
				c.expect("550 5.5.2 Bare CR or LF")
				c.do("NOOP", "250")
				if n := len(rec.delivered()); n != 0 {
					t.Errorf("fake end %q: %d messages delivered", fake, n)
				}
				continue
			}
			c.expect("250")
			c.do("NOOP", "250")
			msgs := rec.delivered()
			// A dot after CRLF starts a line and is unstuffed (4.5.2).
			want := "first" + strings.Replace(fake, "\r\n.", "\r\n", 1) + smuggled
			if len(msgs) != 1 || msgs[0].data != want {
				t.Errorf("fake end %q accepted: delivered %v", fake, msgs)
			}
		}
	}
}

// TestPipelinedRepliesOneWrite: the replies to a pipelined group leave in
// one write (RFC 2920 3.2), not one write per line as go-smtp does.
func TestPipelinedRepliesOneWrite(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cl := &countingListener{Listener: l}
	srv := &Server{Hostname: "mx.test"}
	go srv.Serve(cl)
	t.Cleanup(func() { srv.Close() })
	c := dial(t, l.Addr().String())
	c.expect("220")
	c.do("EHLO client.example", "250") // one write for all five lines
	c.send("MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nRCPT TO:<c@example.org>\r\nDATA\r\n")
	for _, want := range []string{"250 2.1.0", "250 2.1.5", "250 2.1.5", "354"} {
		c.expect(want)
	}
	c.send(".\r\n")
	c.expect("250")
	if got := cl.writes(); got != 4 {
		t.Fatalf("server made %d writes, want 4: greeting, EHLO, the pipelined group, the final reply", got)
	}
}

type countingListener struct {
	net.Listener
	mu sync.Mutex
	n  int
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c, l: l}, nil
}

func (l *countingListener) writes() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n
}

type countingConn struct {
	net.Conn
	l *countingListener
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.l.mu.Lock()
	c.l.n++
	c.l.mu.Unlock()
	return c.Conn.Write(p)
}

// TestCommandTimeout: a silent client gets 421 and is disconnected
// (RFC 5321 4.5.3.2.7), and so does one that trickles a command line
// slower than the deadline allows, even though each byte comes well within
// it.
func TestCommandTimeout(t *testing.T) {
	addr := startServer(t, &Server{CommandTimeout: 300 * time.Millisecond})
	c := greeted(t, addr)
	c.expect("421 4.4.2")
	c.expectClosed()

	// The trickle would last 2 s; it is cut off long before its end, so
	// the writer finds the connection closed.
	c = greeted(t, addr)
	conn := c.conn
	written := make(chan int, 1)
	go func() {
		n := 0
		for ; n < 40; n++ {
			if _, err := conn.Write([]byte("N")); err != nil {
				break
			}
			time.Sleep(50 * time.Millisecond) // pacing the trickle, not synchronising
		}
		written <- n
	}()
	c.expect("421 4.4.2")
	c.expectClosed()
	if n := <-written; n == 40 {
		t.Fatal("the whole trickle was read: no deadline for the command line as a whole")
	}
}

// TestMessageTimeout: a message trickled a line at a time, each within
// DataTimeout, is cut off at MessageTimeout; nothing is delivered.
func TestMessageTimeout(t *testing.T) {
	rec := &recorder{}
	addr := startServer(t, &Server{Handler: rec, DataTimeout: 200 * time.Millisecond, MessageTimeout: 500 * time.Millisecond})
	c := greeted(t, addr)
	c.do("MAIL FROM:<a@example.org>", "250")
	c.do("RCPT TO:<b@example.org>", "250")
	c.do("DATA", "354")
	conn := c.conn
	written := make(chan int, 1)
	go func() {
		n := 0
		for ; n < 40; n++ {
			if _, err := conn.Write([]byte("line\r\n")); err != nil {
				break
			}
			time.Sleep(50 * time.Millisecond) // pacing, each line within DataTimeout
		}
		written <- n
	}()
	c.expect("421 4.4.2")
	c.expectClosed()
	if n := <-written; n == 40 {
		t.Fatal("the whole 2 s trickle was read: MessageTimeout did not cut it off")
	}
	if n := len(rec.delivered()); n != 0 {
		t.Fatalf("%d messages delivered", n)
	}

	// A client that stops in the middle of the data: DataTimeout.
	c = greeted(t, addr)
	c.message("partial\r\n", "421 4.4.2")
}

// TestMaxConnections: the connection beyond the limit gets 421 and is
// closed; the ones within it are served. (Without MaxConnectionsPerIP,
// one client could have only half of them.)
func TestMaxConnections(t *testing.T) {
	addr := startServer(t, &Server{MaxConnections: 2, MaxConnectionsPerIP: -1})
	a := greeted(t, addr)
	b := greeted(t, addr)
	c := dial(t, addr)
	c.expect("421 mx.test Too many connections")
	c.expectClosed()
	a.do("QUIT", "221")
	a.expectClosed()
	b.do("NOOP", "250")
	// The server noticed a's end: a new client is served. The session's
	// end and the next accept race, so allow the refusal a few times.
	for i := 0; ; i++ {
		d := dial(t, addr)
		if lines := d.readReply(); strings.HasPrefix(lines[0], "220") {
			break
		} else if i == 100 {
			t.Fatalf("still refused: %q", lines)
		}
	}
}

// TestMaxErrors: a client that keeps sending bad commands is disconnected
// with 421 (RFC 5321 7.8).
func TestMaxErrors(t *testing.T) {
	c := greeted(t, startServer(t, &Server{MaxErrors: 3}))
	c.do("XYZZY", "500")
	c.do("RCPT TO:<a@example.org>", "503")
	c.cmd("DATA")
	c.expect("503")
	c.expect("421 4.7.0")
	c.expectClosed()
}

// TestLogNeverHoldsContent: the log shows sessions and messages but never
// the message body.
func TestLogNeverHoldsContent(t *testing.T) {
	var buf syncBuffer
	logger := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c := greeted(t, startServer(t, &Server{Logger: logger}))
	c.message("Subject: top secret subject\r\n\r\nsecret body\r\n.\r\n", "250")
	c.do("QUIT", "221")
	c.expectClosed()
	log := buf.String()
	if strings.Contains(log, "secret") {
		t.Fatalf("log holds message content:\n%s", log)
	}
	if !strings.Contains(log, "msg=message") || !strings.Contains(log, "verb=DATA") {
		t.Fatalf("log lacks the message line or the commands:\n%s", log)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestHandlerReadsPart: a handler that stops reading early still gets its
// reply sent after the whole message was consumed, and the session stays
// in step.
func TestHandlerReadsPart(t *testing.T) {
	srv := &Server{Handler: HandlerFunc(func(ctx context.Context, env *Envelope, msg io.Reader) error {
		var b [10]byte
		msg.Read(b[:])
		return &Reply{Code: 554, Enhanced: "5.7.1", Text: "Content refused"}
	})}
	c := greeted(t, startServer(t, srv))
	c.message(strings.Repeat("line of text\r\n", 5000)+"QUIT\r\n.\r\n", "554 5.7.1 Content refused")
	c.do("NOOP", "250")
}
