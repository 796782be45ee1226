package smtpd

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

// The optional callbacks and defaults not covered elsewhere.

// TestZeroServer: the zero Server greets with the machine's name and
// accepts and discards mail.
func TestZeroServer(t *testing.T) {
	srv := &Server{}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	defer srv.Close()
	host, err := os.Hostname()
	if err != nil || !isDomain(host) {
		host = "localhost"
	}
	c := dial(t, l.Addr().String())
	c.expect("220 " + host + " ESMTP smtpd")
	c.do("EHLO client.example", "250 ")
	c.message("x\r\n.\r\n", "250 2.0.0")
}

func TestVerifyAndExpand(t *testing.T) {
	srv := &Server{
		Verify: func(ctx context.Context, env *Envelope, arg string) error {
			switch arg {
			case "jane":
				return &Reply{Code: 250, Enhanced: "2.1.5", Text: "Jane Doe <jane@example.org>"}
			case "nobody":
				return &Reply{Code: 550, Enhanced: "5.1.1", Text: "No such user"}
			case "broken":
				return errors.New("directory down")
			}
			return nil
		},
		Expand: func(ctx context.Context, env *Envelope, arg string) ([]string, error) {
			if arg == "staff" {
				return []string{"Jane <jane@example.org>", "John <john@example.org>"}, nil
			}
			return nil, nil
		},
	}
	c := greeted(t, startServer(t, srv))
	c.do("VRFY jane", "250 2.1.5 Jane Doe <jane@example.org>")
	c.do("VRFY nobody", "550 5.1.1")
	c.do("VRFY broken", "451 4.3.0")
	c.do("VRFY someone", "252 2.1.5")
	lines := c.do("EXPN staff", "250 2.1.5 John <john@example.org>")
	if len(lines) != 2 || lines[0] != "250-2.1.5 Jane <jane@example.org>" {
		t.Fatalf("EXPN reply %q", lines)
	}
	c.do("EXPN nothing", "550 5.1.1")
	c.do("EXPN", "501 5.5.4")
}

// TestCheckHello: a refused HELO leaves the session as it was.
func TestCheckHello(t *testing.T) {
	srv := &Server{CheckHello: func(ctx context.Context, env *Envelope) error {
		if env.Hello == "mx.test" {
			return &Reply{Code: 550, Enhanced: "5.7.1", Text: "You are not me"}
		}
		return nil
	}}
	c := dial(t, startServer(t, srv))
	c.expect("220")
	c.do("EHLO mx.test", "550 You are not me") // not yet ESMTP: no enhanced code
	c.do("MAIL FROM:<a@example.org>", "503")
	c.do("EHLO client.example", "250")
	c.do("MAIL FROM:<a@example.org>", "250")
	c.do("EHLO mx.test", "550 5.7.1")
	c.do("RCPT TO:<b@example.org>", "250") // the transaction survived
}

// TestInvalidAddressNeverReachesCallback: the grammar is checked before
// any callback sees an address.
func TestInvalidAddressNeverReachesCallback(t *testing.T) {
	calls := make(chan string, 10)
	srv := &Server{
		MaxErrors: -1,
		CheckSender: func(ctx context.Context, env *Envelope) error {
			calls <- env.ReversePath.String()
			return nil
		},
		CheckRecipient: func(ctx context.Context, env *Envelope, rcpt Recipient) error {
			calls <- rcpt.ForwardPath.String()
			return nil
		},
	}
	c := greeted(t, startServer(t, srv))
	for _, bad := range []string{"<a@[exec id]>", "<a b@example.org>", "<@:a@b>", "<a@-bad.example>", "a@example.org", "<a@example.org"} {
		c.do("MAIL FROM:"+bad, "501 5.1.7")
	}
	c.do("MAIL FROM:<ok@example.org>", "250")
	for _, bad := range []string{"<>", "<a@[1.2.3]>", "<\"unterminated@example.org>", "<a@example.org>junk"} {
		c.do("RCPT TO:"+bad, "501 5.1.3")
	}
	c.do("QUIT", "221")
	c.expectClosed()
	close(calls)
	var got []string
	for a := range calls {
		got = append(got, a)
	}
	if strings.Join(got, ",") != "ok@example.org" {
		t.Fatalf("callbacks saw %q", got)
	}
}

// TestRsetAbortsTransaction: after RSET nothing of the transaction is left.
func TestRsetAbortsTransaction(t *testing.T) {
	rec := &recorder{}
	c := greeted(t, startServer(t, &Server{Handler: rec}))
	c.do("MAIL FROM:<a@example.org>", "250")
	c.do("RCPT TO:<old@example.org>", "250")
	c.do("RSET", "250 2.0.0")
	c.do("DATA", "503")
	c.do("RCPT TO:<new@example.org>", "503")
	c.do("MAIL FROM:<b@example.org>", "250")
	c.do("RCPT TO:<new@example.org>", "250")
	c.do("DATA", "354")
	c.send("x\r\n.\r\n")
	c.expect("250")
	env := rec.delivered()[0].env
	if env.ReversePath.String() != "b@example.org" || len(env.Recipients) != 1 || env.Recipients[0].ForwardPath.String() != "new@example.org" {
		t.Fatalf("envelope %+v", env)
	}
}

// TestEightBitPassesUnaltered: 8BITMIME content, every octet but CR and LF
// on its own, arrives exactly as sent (tcllib's smtpd mangled high octets).
func TestEightBitPassesUnaltered(t *testing.T) {
	rec := &recorder{}
	c := greeted(t, startServer(t, &Server{Handler: rec, DisableReceived: true}))
	var line []byte
	for b := 0; b < 256; b++ {
		if b != '\r' && b != '\n' {
			line = append(line, byte(b))
		}
	}
	body := "Subject: 8bit\r\n\r\n" + string(line) + "\r\n" + "caf\xc3\xa9 \xff\xfe\r\n"
	c.do("MAIL FROM:<a@example.org> BODY=8BITMIME", "250")
	c.do("RCPT TO:<b@example.org>", "250")
	c.do("DATA", "354")
	c.send(body + ".\r\n")
	c.expect("250")
	if got := rec.delivered()[0].data; got != body {
		t.Fatalf("delivered %q, want %q", got, body)
	}
}

// TestDeliveryTimeout: the handler's context ends DeliveryTimeout after the
// final "." has been read, not before; and so for every message of a
// session, not only the first.
func TestDeliveryTimeout(t *testing.T) {
	srv := &Server{DeliveryTimeout: 100 * time.Millisecond, Handler: HandlerFunc(func(ctx context.Context, env *Envelope, msg io.Reader) error {
		if _, err := io.Copy(io.Discard, msg); err != nil {
			return err
		}
		<-ctx.Done() // the test hangs if it never ends
		return &Reply{Code: 451, Enhanced: "4.4.7", Text: "Delivery timed out"}
	})}
	c := greeted(t, startServer(t, srv))
	c.message("x\r\n.\r\n", "451 4.4.7")
	c.do("NOOP", "250")
	c.message("y\r\n.\r\n", "451 4.4.7")
	c.do("MAIL FROM:<a@example.org>", "250")
	c.do("RCPT TO:<b@example.org>", "250")
	c.bdat("z", true, "451 4.4.7")
}

// TestRefusedTimeout: a refused client that stays silent is disconnected.
func TestRefusedTimeout(t *testing.T) {
	srv := &Server{CommandTimeout: 200 * time.Millisecond, CheckConnection: func(ctx context.Context, remote net.Addr) error {
		return errors.New("no")
	}}
	c := dial(t, startServer(t, srv))
	c.expect("554")
	c.expect("421")
	c.expectClosed()
}
