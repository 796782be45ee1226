package smtpd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
)

// CHUNKING (RFC 3030), SMTPUTF8 (RFC 6531), DSN parameters (RFC 3461) and
// LMTP (RFC 2033).

// bdat sends one chunk and expects want.
func (c *client) bdat(chunk string, last bool, want string) {
	c.t.Helper()
	cmd := fmt.Sprintf("BDAT %d", len(chunk))
	if last {
		cmd += " LAST"
	}
	c.send(cmd + "\r\n" + chunk)
	c.expect(want)
}

// TestBDAT: chunks are taken as exact octets, no dot-stuffing and no line
// rules, and delivered as one message; 250 per chunk.
func TestBDAT(t *testing.T) {
	rec := &recorder{}
	c := greeted(t, startServer(t, &Server{Handler: rec, DisableReceived: true}))
	c.do("MAIL FROM:<a@example.org> BODY=BINARYMIME", "250")
	c.do("RCPT TO:<b@example.org>", "250")
	chunks := []string{"Subject: chunks\r\n\r\n.dot\r\n", "bare\nLF and \r CR\r\n.\r\n", "\x00\xff binary", ""}
	c.bdat(chunks[0], false, "250 2.0.0")
	c.bdat(chunks[1], false, "250 2.0.0")
	c.do("NOOP", "250") // commands may come between chunks
	c.bdat(chunks[2], false, "250 2.0.0")
	c.bdat(chunks[3], true, "250 2.0.0 OK: queued as")
	c.do("NOOP", "250")
	msgs := rec.delivered()
	if len(msgs) != 1 || msgs[0].data != strings.Join(chunks, "") {
		t.Fatalf("delivered %v", msgs)
	}
	if msgs[0].env.Body != "BINARYMIME" {
		t.Fatalf("Body %q", msgs[0].env.Body)
	}

	// One chunk, pipelined with the envelope (RFC 2920 with RFC 3030).
	c.send("MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nBDAT 5 LAST\r\nhello")
	c.expect("250")
	c.expect("250")
	c.expect("250 2.0.0 OK")
	if got := rec.delivered()[1].data; got != "hello" {
		t.Fatalf("delivered %q", got)
	}
}

// TestBDATRefusedChunkConsumed: a refused BDAT's octets are read all the
// same, never run as commands (go-smtp #315).
func TestBDATRefusedChunkConsumed(t *testing.T) {
	rec := &recorder{}
	c := greeted(t, startServer(t, &Server{Handler: rec}))
	evil := "MAIL FROM:<evil@example.org>\r\nQUIT\r\n"
	c.bdat(evil, true, "503 5.5.1") // no transaction
	c.do("MAIL FROM:<a@example.org>", "250")
	c.bdat(evil, false, "503 5.5.1") // no recipient
	c.do("RCPT TO:<b@example.org>", "250")
	c.bdat("x", true, "250")
	c.bdat(evil, true, "503 5.5.1") // after LAST, the transaction is over
	c.do("NOOP", "250")
	if n := len(rec.delivered()); n != 1 {
		t.Fatalf("%d messages delivered", n)
	}
	// A size that cannot be parsed leaves the chunk's end unknown: closed.
	c.send("BDAT x LAST\r\n")
	c.expect("501 5.5.4")
	c.expectClosed()
}

// TestBDATHugeChunk: a chunk size beyond 32 bits is skipped in full on
// every platform. On a 32-bit one, 2^32+5 once became 5: the chunk's
// octets after the fifth ran as commands.
func TestBDATHugeChunk(t *testing.T) {
	c := greeted(t, startServer(t, &Server{}))
	c.send(fmt.Sprintf("BDAT %d LAST\r\n12345NOOP\r\n", int64(1)<<32+5))
	c.expect("503 5.5.1") // no transaction: refused, and the chunk skipped
	// The chunk has not ended when the client stops sending: the session
	// ends there, with nothing run.
	c.conn.(*net.TCPConn).CloseWrite()
	c.expectClosed()
}

// TestBDATAndDATADoNotMix: DATA after a chunk, BINARYMIME with DATA.
func TestBDATAndDATADoNotMix(t *testing.T) {
	c := greeted(t, startServer(t, &Server{}))
	c.do("MAIL FROM:<a@example.org>", "250")
	c.do("RCPT TO:<b@example.org>", "250")
	c.bdat("part", false, "250")
	c.do("DATA", "503 5.5.1")
	c.do("MAIL FROM:<x@example.org>", "503 5.5.1")
	c.bdat("", true, "250")
	c.do("MAIL FROM:<a@example.org> BODY=BINARYMIME", "250")
	c.do("RCPT TO:<b@example.org>", "250")
	c.do("DATA", "503 5.5.1 BODY=BINARYMIME requires BDAT")
}

// TestBDATAbort: RSET between chunks drops the partial message; the
// handler sees an error and nothing is delivered.
func TestBDATAbort(t *testing.T) {
	handlerErr := make(chan error, 1)
	srv := &Server{Handler: HandlerFunc(func(ctx context.Context, env *Envelope, msg io.Reader) error {
		_, err := io.ReadAll(msg)
		handlerErr <- err
		return err
	})}
	c := greeted(t, startServer(t, srv))
	c.do("MAIL FROM:<a@example.org>", "250")
	c.do("RCPT TO:<b@example.org>", "250")
	c.bdat("partial", false, "250")
	c.do("RSET", "250 2.0.0")
	if err := <-handlerErr; !errors.Is(err, errAborted) {
		t.Fatalf("handler read error %v", err)
	}
	c.do("RCPT TO:<b@example.org>", "503")
	c.do("MAIL FROM:<a@example.org>", "250")

	// QUIT between chunks ends the session.
	c.do("RCPT TO:<b@example.org>", "250")
	c.bdat("partial", false, "250")
	c.do("QUIT", "221")
	<-handlerErr
	c.expectClosed()
}

// TestBDATSize: the size limit holds across chunks; the rest is read and
// the session stays in step.
func TestBDATSize(t *testing.T) {
	rec := &recorder{}
	c := greeted(t, startServer(t, &Server{Handler: rec, MaxMessageBytes: 10}))
	c.do("MAIL FROM:<a@example.org>", "250")
	c.do("RCPT TO:<b@example.org>", "250")
	c.bdat("123456", false, "250")
	c.bdat("7890", false, "250") // exactly 10
	c.bdat("X", false, "250")
	c.bdat(strings.Repeat("y", 5000), true, "552 5.3.4")
	c.do("NOOP", "250")
	c.do("MAIL FROM:<a@example.org>", "250")
	c.do("RCPT TO:<b@example.org>", "250")
	c.bdat("1234567890", true, "250")
	if msgs := rec.delivered(); len(msgs) != 1 || !strings.HasSuffix(msgs[0].data, "\r\n1234567890") {
		t.Fatalf("delivered %v", msgs)
	}
}

// TestSMTPUTF8: UTF-8 addresses only in a transaction that declared
// SMTPUTF8 (RFC 6531 3.4, 3.5).
func TestSMTPUTF8(t *testing.T) {
	rec := &recorder{}
	c := greeted(t, startServer(t, &Server{Handler: rec}))
	c.do("MAIL FROM:<jörg@example.org>", "553 5.6.7")
	c.do("MAIL FROM:<a@example.org>", "250")
	c.do("RCPT TO:<jörg@bücher.example>", "553 5.6.7")
	c.do("RSET", "250")
	c.do("MAIL FROM:<jörg@example.org> SMTPUTF8", "250")
	c.do("RCPT TO:<\xff@example.org>", "501") // not UTF-8
	c.do("RCPT TO:<用户@例子.example>", "250")
	c.do("DATA", "354")
	c.send("Subject: héllo\r\n\r\nbody\r\n.\r\n")
	c.expect("250")
	d := rec.delivered()[0]
	if !d.env.SMTPUTF8 || d.env.Recipients[0].ForwardPath.String() != "用户@例子.example" {
		t.Fatalf("envelope %+v", d.env)
	}
	if !strings.Contains(d.data, " with UTF8SMTP id ") {
		t.Fatalf("Received: %q", d.data)
	}
	c.do("MAIL FROM:<a@example.org> SMTPUTF8=yes", "501 5.5.4")
}

// TestDSNParameters: RET, ENVID, NOTIFY and ORCPT are checked and reach
// the handler decoded (RFC 3461 4).
func TestDSNParameters(t *testing.T) {
	rec := &recorder{}
	c := greeted(t, startServer(t, &Server{Handler: rec}))
	for _, bad := range []string{"RET=ALL", "ENVID=a=b", "ENVID=" + strings.Repeat("x", 101)} {
		c.do("MAIL FROM:<a@example.org> "+bad, "501 5.5.4")
	}
	c.do("MAIL FROM:<a@example.org> RET=hdrs ENVID=QQ+2B314", "250")
	for _, bad := range []string{"NOTIFY=NEVER,SUCCESS", "NOTIFY=SOMETIMES", "NOTIFY=DELAY,DELAY", "ORCPT=rfc822", "ORCPT=rfc822;a+4"} {
		c.do("RCPT TO:<b@example.org> "+bad, "501 5.5.4")
	}
	c.do("RCPT TO:<b@example.org> NOTIFY=success,FAILURE ORCPT=rfc822;b+40example.org", "250")
	c.do("RCPT TO:<c@example.org> NOTIFY=NEVER", "250")
	c.do("RCPT TO:<d@example.org> FOO=BAR", "555 5.5.4")
	c.do("DATA", "354")
	c.send("x\r\n.\r\n")
	c.expect("250")
	env := rec.delivered()[0].env
	r := env.Recipients
	if env.Ret != "HDRS" || env.EnvID != "QQ+314" || len(r) != 2 ||
		strings.Join(r[0].Notify, ",") != "SUCCESS,FAILURE" || r[0].ORCPT != "rfc822;b@example.org" ||
		strings.Join(r[1].Notify, ",") != "NEVER" || r[1].ORCPT != "" {
		t.Fatalf("envelope %+v, recipients %+v", env, r)
	}
}

// lmtpRecorder refuses recipients at refused.example, one by one.
type lmtpRecorder struct{ recorder }

func (l *lmtpRecorder) ServeLMTP(ctx context.Context, env *Envelope, msg io.Reader) []error {
	err := l.ServeSMTP(ctx, env, msg)
	results := make([]error, len(env.Recipients))
	for i, r := range env.Recipients {
		results[i] = err
		if r.ForwardPath.Domain == "refused.example" {
			results[i] = &Reply{Code: 550, Enhanced: "5.1.1", Text: "Mailbox unavailable"}
		}
	}
	return results
}

// TestLMTP: LHLO instead of EHLO; one reply per recipient after the
// message, from the handler's per-recipient results (RFC 2033 4.2).
func TestLMTP(t *testing.T) {
	rec := &lmtpRecorder{}
	addr := startServer(t, &Server{LMTP: true, Handler: rec})
	c := dial(t, addr)
	c.expect("220 mx.test LMTP smtpd")
	c.do("EHLO client.example", "500 Command unrecognized: this server speaks LMTP")
	c.do("HELO client.example", "500")
	c.do("LHLO client.example", "250")
	c.do("MAIL FROM:<a@example.org>", "250")
	c.do("RCPT TO:<one@example.org>", "250")
	c.do("RCPT TO:<two@refused.example>", "250")
	c.do("RCPT TO:<three@example.org>", "250")
	c.do("DATA", "354")
	c.send("x\r\n.\r\n")
	c.expect("250 2.0.0")
	c.expect("550 5.1.1")
	c.expect("250 2.0.0")
	c.do("MAIL FROM:<a@example.org>", "250")
	c.do("RCPT TO:<one@example.org>", "250")
	c.do("RCPT TO:<two@refused.example>", "250")
	c.bdat("y", true, "250")
	c.expect("550 5.1.1")
	if got := rec.delivered()[0].data; !strings.Contains(got, " with LMTP id ") {
		t.Fatalf("Received: %q", got)
	}

	// A plain Handler's one result goes to every recipient.
	c = dial(t, startServer(t, &Server{LMTP: true, Handler: HandlerFunc(func(ctx context.Context, env *Envelope, msg io.Reader) error {
		return &Reply{Code: 452, Enhanced: "4.2.2", Text: "Mailbox full"}
	})}))
	c.expect("220")
	c.do("LHLO client.example", "250")
	c.do("MAIL FROM:<a@example.org>", "250")
	c.do("RCPT TO:<one@example.org>", "250")
	c.do("RCPT TO:<two@example.org>", "250")
	c.do("DATA", "354")
	c.send("x\r\n.\r\n")
	c.expect("452 4.2.2")
	c.expect("452 4.2.2")

	// An SMTP server does not know LHLO.
	c = dial(t, startServer(t, &Server{}))
	c.expect("220")
	c.do("LHLO client.example", "500 Syntax error, command unrecognized")
}
