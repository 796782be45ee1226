package smtpd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/mail"
	"strings"
	"testing"
	"time"
)

// Sessions over loopback: the command set, the sequence rules, and what the
// handler receives.

func TestGreetingAndBanner(t *testing.T) {
	addr := startServer(t, &Server{Hostname: "mx.example.org", Banner: "test banner"})
	c := dial(t, addr)
	if got := c.readReply(); got[0] != "220 mx.example.org ESMTP test banner" {
		t.Fatalf("greeting %q", got)
	}
	lines := c.do("EHLO client.example", "250 ")
	want := []string{"250-mx.example.org", "250-PIPELINING", "250-8BITMIME", "250-SIZE 33554432",
		"250-ENHANCEDSTATUSCODES", "250-CHUNKING", "250-BINARYMIME", "250-SMTPUTF8", "250 DSN"}
	if strings.Join(lines, "|") != strings.Join(want, "|") {
		t.Fatalf("EHLO reply %q, want %q", lines, want)
	}
	c.do("QUIT", "221 2.0.0 mx.example.org")
	c.expectClosed()
}

func TestSequence(t *testing.T) {
	addr := startServer(t, &Server{})
	script(t, addr, `
		S: 220 mx.test ESMTP smtpd
		# RFC 5321 4.1.1.1: the client must greet first.
		C: MAIL FROM:<a@example.org>
		S: 503 Bad sequence
		C: RCPT TO:<b@example.org>
		S: 503 Bad sequence
		C: DATA
		S: 503 Bad sequence
		C: NOOP
		S: 250 OK
		C: RSET
		S: 250 OK
		C: EHLO client.example
		S: 250-mx.test
		S: 250-PIPELINING
		S: 250-8BITMIME
		S: 250-SIZE
		S: 250-ENHANCEDSTATUSCODES
		S: 250-CHUNKING
		S: 250-BINARYMIME
		S: 250-SMTPUTF8
		S: 250 DSN
		C: RCPT TO:<b@example.org>
		S: 503 5.5.1 Bad sequence
		C: DATA
		S: 503 5.5.1
		C: MAIL FROM:<a@example.org>
		S: 250 2.1.0
		# Nested MAIL (4.1.4).
		C: MAIL FROM:<a@example.org>
		S: 503 5.5.1
		# DATA without an accepted recipient (3.3).
		C: DATA
		S: 554 5.5.1 No valid recipients
		C: RCPT TO:<b@example.org>
		S: 250 2.1.5
		C: MAIL FROM:<c@example.org>
		S: 503 5.5.1
		C: QUIT
		S: 221 2.0.0
		closed
	`)
}

func TestVerbs(t *testing.T) {
	addr := startServer(t, &Server{MaxErrors: -1})
	script(t, addr, `
		S: 220
		C: ehlo client.example
		S: 250-mx.test
		S: 250-PIPELINING
		S: 250-8BITMIME
		S: 250-SIZE
		S: 250-ENHANCEDSTATUSCODES
		S: 250-CHUNKING
		S: 250-BINARYMIME
		S: 250-SMTPUTF8
		S: 250 DSN
		C: XYZZY
		S: 500 5.5.2 Syntax error, command unrecognized
		# The seed matched verbs as glob patterns; these hung it.
		C: *
		S: 500 5.5.2
		C: HEL? x
		S: 500 5.5.2
		C: [EH]HLO x
		S: 500 5.5.2
		C: TURN
		S: 502 5.5.1 Command not implemented
		C: send FROM:<a@b>
		S: 502 5.5.1
		C: SOML FROM:<a@b>
		S: 502
		C: SAML FROM:<a@b>
		S: 502
		C: noop with arguments that are ignored
		S: 250 2.0.0
		C: RSET now
		S: 501 5.5.4
		C: QUIT now
		S: 501 5.5.4
		C: VRFY someone
		S: 252 2.1.5
		C: VRFY
		S: 501 5.5.4
		C: EXPN list
		S: 502 5.5.1
		C: HELP
		S: 214-2.0.0 Commands:
		S: 214 2.0.0
		C: HELP mail
		S: 214 2.0.0 MAIL: starts a mail transaction
		C: HELP nothing
		S: 504 5.5.4
		C: mail from:<a@example.org>
		S: 250 2.1.0
		C: rcpt to:<b@example.org>
		S: 250 2.1.5
		C: data now
		S: 501 5.5.4
		C: Quit
		S: 221
		closed
	`)
}

func TestHelloArguments(t *testing.T) {
	addr := startServer(t, &Server{})
	for _, tc := range []struct{ line, want string }{
		{"EHLO [127.0.0.1]", "250"},
		{"HELO [IPv6:::1]", "250 mx.test"},
		{"EHLO [IPv6:2001:db8::1]", "250"},
		{"EHLO client.example", "250"},
		{"HELO client.example", "250 mx.test"},
		{"EHLO", "501 Syntax error"}, // no enhanced code before EHLO (RFC 2034)
		{"HELO", "501"},
		{"EHLO bad_name.example", "501"},
		{"EHLO [300.1.1.1]", "501"},
		{"EHLO two words", "501"},
	} {
		c := dial(t, addr)
		c.expect("220 ")
		c.do(tc.line, tc.want)
	}
}

// TestHelloResetsTransaction: a second EHLO or HELO is accepted and aborts
// the transaction, as RSET does (RFC 5321 4.1.4); the seed answered 503.
func TestHelloResetsTransaction(t *testing.T) {
	rec := &recorder{}
	addr := startServer(t, &Server{Handler: rec})
	c := greeted(t, addr)
	c.do("MAIL FROM:<a@example.org>", "250")
	c.do("RCPT TO:<first@example.org>", "250")
	c.do("EHLO client.example", "250")
	c.do("RCPT TO:<x@example.org>", "503")
	c.do("MAIL FROM:<b@example.org>", "250")
	c.do("RCPT TO:<second@example.org>", "250")
	c.do("HELO client.example", "250")
	// After HELO, no enhanced codes (RFC 2034 applies to EHLO sessions).
	c.do("RCPT TO:<x@example.org>", "503 Bad sequence")
	c.do("MAIL FROM:<c@example.org>", "250 Sender OK")
	c.do("RCPT TO:<third@example.org>", "250 Recipient OK")
	c.do("DATA", "354")
	c.send("Subject: x\r\n\r\nbody\r\n.\r\n")
	c.expect("250 OK: queued as")
	msgs := rec.delivered()
	if len(msgs) != 1 {
		t.Fatalf("%d messages delivered, want 1", len(msgs))
	}
	env := msgs[0].env
	if env.ReversePath.String() != "c@example.org" || len(env.Recipients) != 1 ||
		env.Recipients[0].ForwardPath.String() != "third@example.org" || env.ESMTP {
		t.Fatalf("envelope %+v", env)
	}
}

// TestEnvelopeResetAfterMessage: nothing of a transaction carries over to
// the next one (the seed delivered the next message to the old recipients
// too, and delivered again on a bare second DATA).
func TestEnvelopeResetAfterMessage(t *testing.T) {
	rec := &recorder{}
	addr := startServer(t, &Server{Handler: rec})
	c := greeted(t, addr)
	c.do("MAIL FROM:<a@example.org>", "250")
	c.do("RCPT TO:<one@example.org>", "250")
	c.do("RCPT TO:<two@example.org>", "250")
	c.do("DATA", "354")
	c.send("first\r\n.\r\n")
	c.expect("250 2.0.0")
	c.do("DATA", "503 5.5.1")
	c.do("RCPT TO:<three@example.org>", "503 5.5.1")
	c.do("MAIL FROM:<>", "250")
	c.do("RCPT TO:<three@example.org>", "250")
	c.do("DATA", "354")
	c.send("second\r\n.\r\n")
	c.expect("250 2.0.0")
	msgs := rec.delivered()
	if len(msgs) != 2 {
		t.Fatalf("%d messages, want 2", len(msgs))
	}
	second := msgs[1].env
	if !second.ReversePath.IsNull() || len(second.Recipients) != 1 || second.Recipients[0].ForwardPath.String() != "three@example.org" {
		t.Fatalf("second envelope %+v", second)
	}
	if msgs[0].env.ID == second.ID {
		t.Fatalf("both messages have ID %s", second.ID)
	}
	if !strings.HasSuffix(msgs[1].data, "\r\n\r\nsecond\r\n") && !strings.HasSuffix(msgs[1].data, "\r\nsecond\r\n") {
		t.Fatalf("second message %q", msgs[1].data)
	}
}

func TestReceivedField(t *testing.T) {
	rec := &recorder{}
	addr := startServer(t, &Server{Handler: rec, Hostname: "mx.example.org"})
	c := greeted(t, addr)
	c.do("MAIL FROM:<a@example.org>", "250")
	c.do("RCPT TO:<b@example.org>", "250")
	c.do("DATA", "354")
	c.send("Subject: hi\r\n\r\n..dot\r\n.\r\n")
	lines := c.expect("250 2.0.0 OK: queued as ")
	id := strings.TrimPrefix(lines[0], "250 2.0.0 OK: queued as ")
	got := rec.delivered()[0].data
	prefix := "Received: from client.test ([127.0.0.1])\r\n\tby mx.example.org with ESMTP id " + id +
		"\r\n\tfor <b@example.org>;\r\n\t"
	if !strings.HasPrefix(got, prefix) {
		t.Fatalf("message starts %q, want %q", got, prefix)
	}
	if !strings.HasSuffix(got, "\r\nSubject: hi\r\n\r\n.dot\r\n") {
		t.Fatalf("message ends %q", got)
	}

	// Turned off, the message is exactly what was sent, unstuffed.
	rec2 := &recorder{}
	addr2 := startServer(t, &Server{Handler: rec2, DisableReceived: true})
	c2 := greeted(t, addr2)
	c2.do("MAIL FROM:<a@example.org>", "250")
	c2.do("RCPT TO:<b@example.org>", "250")
	c2.do("RCPT TO:<c@example.org>", "250")
	c2.do("DATA", "354")
	c2.send("Subject: hi\r\n\r\n..dot\r\n.\r\n")
	c2.expect("250")
	if got := rec2.delivered()[0].data; got != "Subject: hi\r\n\r\n.dot\r\n" {
		t.Fatalf("message %q", got)
	}
}

// TestReplyAfterDelivery: 250 comes only after the handler returned nil,
// and a handler's refusal reaches the client instead.
func TestReplyAfterDelivery(t *testing.T) {
	returned := make(chan struct{}, 1)
	var refuse error
	srv := &Server{Handler: HandlerFunc(func(ctx context.Context, env *Envelope, msg io.Reader) error {
		if _, err := io.Copy(io.Discard, msg); err != nil {
			return err
		}
		returned <- struct{}{}
		return refuse
	})}
	addr := startServer(t, srv)
	c := greeted(t, addr)
	send := func(want string) {
		c.message("hello\r\n.\r\n", want)
		select {
		case <-returned:
		default:
			t.Fatalf("reply %s arrived before the handler returned", want)
		}
	}
	send("250 2.0.0")
	refuse = &Reply{Code: 550, Enhanced: "5.7.1", Text: "Refused\r\n250 injected"}
	send("550 5.7.1 Refused  250 injected")
	refuse = errors.New("disk full at /var/secret")
	send("451 4.3.0 Requested action aborted: local error in processing")
}

// TestHandlerPanic: a panicking callback costs a 451, and the server and
// the session keep serving.
func TestHandlerPanic(t *testing.T) {
	srv := &Server{
		CheckSender: func(ctx context.Context, env *Envelope) error {
			if env.ReversePath.LocalPart == "panic" {
				panic("sender check bug")
			}
			return nil
		},
		Handler: HandlerFunc(func(ctx context.Context, env *Envelope, msg io.Reader) error {
			panic("handler bug")
		}),
	}
	addr := startServer(t, srv)
	c := greeted(t, addr)
	c.do("MAIL FROM:<panic@example.org>", "451 4.3.0")
	c.do("MAIL FROM:<ok@example.org>", "250")
	c.do("RCPT TO:<b@example.org>", "250")
	c.do("DATA", "354")
	c.send("hello\r\n.\r\n")
	c.expect("451 4.3.0")
	c.do("NOOP", "250")
	greeted(t, addr).do("QUIT", "221")
}

// TestChecks: the seed's validate callbacks, each at its protocol point.
func TestChecks(t *testing.T) {
	var senders, recipients []string
	srv := &Server{
		CheckSender: func(ctx context.Context, env *Envelope) error {
			senders = append(senders, env.ReversePath.String())
			if env.ReversePath.LocalPart == "denied" {
				return errors.New("internal reason")
			}
			if env.ReversePath.LocalPart == "policy" {
				return &Reply{Code: 550, Enhanced: "5.7.1", Text: "Sender refused by policy"}
			}
			return nil
		},
		CheckRecipient: func(ctx context.Context, env *Envelope, rcpt Recipient) error {
			recipients = append(recipients, rcpt.ForwardPath.String())
			if rcpt.ForwardPath.Domain != "example.org" {
				return &Reply{Code: 550, Enhanced: "5.7.1", Text: "Relaying denied"}
			}
			return nil
		},
	}
	addr := startServer(t, srv)
	c := greeted(t, addr)
	c.do("MAIL FROM:<denied@example.org>", "451 4.3.0 Requested action aborted: local error in processing")
	c.do("MAIL FROM:<policy@example.org>", "550 5.7.1 Sender refused by policy")
	c.do("MAIL FROM:<>", "250")
	c.do("RCPT TO:<a@example.org>", "250")
	c.do("RCPT TO:<a@elsewhere.example>", "550 5.7.1 Relaying denied")
	// RFC 5321 4.5.1: postmaster is accepted without the check, but only
	// the server's own; postmaster@elsewhere would be relaying.
	c.do("RCPT TO:<Postmaster>", "250")
	c.do("RCPT TO:<postmaster@mx.test>", "250")
	c.do("RCPT TO:<postmaster@elsewhere.example>", "550 5.7.1")
	c.do("QUIT", "221")
	c.expectClosed()
	if fmt.Sprint(senders) != "[denied@example.org policy@example.org ]" {
		t.Errorf("CheckSender saw %q", senders)
	}
	if fmt.Sprint(recipients) != "[a@example.org a@elsewhere.example postmaster@elsewhere.example]" {
		t.Errorf("CheckRecipient saw %q", recipients)
	}
}

// TestCheckConnection: a refused client gets 554 with the reply's text, 503
// to everything but QUIT, and is disconnected after a few commands (RFC 5321
// 3.1; the seed answered 550 and never disconnected).
func TestCheckConnection(t *testing.T) {
	seen := make(chan net.Addr, 10)
	srv := &Server{CheckConnection: func(ctx context.Context, remote net.Addr) error {
		seen <- remote
		return &Reply{Code: 550, Text: "Access denied: go away"}
	}}
	addr := startServer(t, srv)
	script(t, addr, `
		S: 554 mx.test Access denied: go away
		C: EHLO client.example
		S: 503 Bad sequence
		C: NOOP
		S: 503
		C: QUIT
		S: 221
		closed
	`)
	if ip, ok := addrIP(<-seen); !ok || ip.String() != "127.0.0.1" {
		t.Errorf("CheckConnection saw %v", seen)
	}
	script(t, addr, `
		S: 554 mx.test
		C: EHLO client.example
		S: 503
		C: XYZZY
		S: 503
		C: MAIL FROM:<a@b.example>
		S: 503
		S: 421
		closed
	`)

	srv2 := &Server{CheckConnection: func(ctx context.Context, remote net.Addr) error {
		return &Reply{Code: 421, Text: "Try again later"}
	}}
	script(t, startServer(t, srv2), `
		S: 421 mx.test Try again later
		closed
	`)
	srv3 := &Server{CheckConnection: func(ctx context.Context, remote net.Addr) error {
		return errors.New("secret detail")
	}}
	script(t, startServer(t, srv3), `
		S: 554 mx.test No SMTP service here
	`)
}

// TestContextCancelledAtEnd: callbacks get a context that ends with the
// connection.
func TestContextCancelledAtEnd(t *testing.T) {
	ctxs := make(chan context.Context, 1)
	srv := &Server{CheckSender: func(ctx context.Context, env *Envelope) error {
		ctxs <- ctx
		return nil
	}}
	c := greeted(t, startServer(t, srv))
	c.do("MAIL FROM:<a@example.org>", "250")
	ctx := <-ctxs
	if ctx.Err() != nil {
		t.Fatal("context ended during the session")
	}
	c.do("QUIT", "221")
	<-ctx.Done() // the test times out if it is never cancelled
}

// TestMultipleServers: several servers in one process, each on its own
// port 0, each with its own configuration (the seed had one per process).
func TestMultipleServers(t *testing.T) {
	a := startServer(t, &Server{Hostname: "a.test"})
	b := startServer(t, &Server{Hostname: "b.test"})
	if a == b {
		t.Fatal("same address")
	}
	dial(t, a).expect("220 a.test")
	dial(t, b).expect("220 b.test")
}

func TestMessageHandler(t *testing.T) {
	got := make(chan string, 1)
	srv := &Server{DisableReceived: true, Handler: MessageHandler(func(ctx context.Context, env *Envelope, msg *mail.Message) error {
		body := make([]byte, 100)
		n, _ := msg.Body.Read(body)
		got <- msg.Header.Get("Subject") + "|" + string(body[:n]) + "|" + env.Recipients[0].ForwardPath.String()
		return nil
	})}
	c := greeted(t, startServer(t, srv))
	c.message("Subject: parsed\r\n\r\nthe body\r\n.\r\n", "250")
	if g := <-got; g != "parsed|the body\r\n|b@example.org" {
		t.Fatalf("got %q", g)
	}
	c.message("not a header line\r\n\r\nbody\r\n.\r\n", "554 5.6.0")
}

// TestSlowClientDoesNotStallOthers: a client that stops in the middle of a
// command line holds up no one else (the seed's blocking reads did).
func TestSlowClientDoesNotStallOthers(t *testing.T) {
	rec := &recorder{}
	addr := startServer(t, &Server{Handler: rec})
	slow := greeted(t, addr)
	slow.send("MAIL FROM:<slow@exa")
	fast := greeted(t, addr)
	fast.message("x\r\n.\r\n", "250")
	slow.send("mple.org>\r\n")
	slow.expect("250")
}

// TestReceivedDate: the date is RFC 5322's, with the zone's real offset
// (the seed computed offsets in whole hours: +0600 for +05:30).
func TestReceivedDate(t *testing.T) {
	rwc := &scriptConn{}
	c := &conn{srv: &Server{Hostname: "mx.test"}, rwc: rwc, remote: rwc.RemoteAddr(), esmtp: true}
	env := &Envelope{ID: "ID1", Hello: "client.example"}
	now := time.Date(2026, 11, 25, 9, 5, 7, 0, time.FixedZone("IST", 5*3600+30*60))
	got := string(c.appendReceived(nil, env, now))
	want := "Received: from client.example ([127.0.0.1])\r\n\tby mx.test with ESMTP id ID1;\r\n\tWed, 25 Nov 2026 09:05:07 +0530\r\n"
	if got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	// The date is formatted once a second (appendDate): another second,
	// or the same second in another zone, has its own.
	for _, tc := range []struct {
		now  time.Time
		date string
	}{
		{now.Add(time.Second), "Wed, 25 Nov 2026 09:05:08 +0530"},
		{now.UTC(), "Wed, 25 Nov 2026 03:35:07 +0000"},
		{now, "Wed, 25 Nov 2026 09:05:07 +0530"},
	} {
		if got := string(c.appendReceived(nil, env, tc.now)); !strings.HasSuffix(got, "\t"+tc.date+"\r\n") {
			t.Errorf("at %v: got %q, want the date %q", tc.now, got, tc.date)
		}
	}
}

// TestReceivedProtocol: the Received field's "with" keyword is one that
// IANA registered: RFC 3848's ESMTP and LMTP with S and A, and RFC 6531
// 3.7.3's UTF8SMTP and UTF8LMTP forms for SMTPUTF8 transactions (no
// "UTF8ESMTP").
func TestReceivedProtocol(t *testing.T) {
	for _, tc := range []struct {
		lmtp, esmtp, tls, auth, utf8 bool
		want                         string
	}{
		{want: "SMTP"},
		{tls: true, auth: true, want: "SMTP"}, // RFC 3848 extends ESMTP and LMTP only
		{esmtp: true, want: "ESMTP"},
		{esmtp: true, tls: true, want: "ESMTPS"},
		{esmtp: true, auth: true, want: "ESMTPA"},
		{esmtp: true, tls: true, auth: true, want: "ESMTPSA"},
		{esmtp: true, utf8: true, want: "UTF8SMTP"},
		{esmtp: true, utf8: true, tls: true, want: "UTF8SMTPS"},
		{esmtp: true, utf8: true, auth: true, want: "UTF8SMTPA"},
		{esmtp: true, utf8: true, tls: true, auth: true, want: "UTF8SMTPSA"},
		{lmtp: true, esmtp: true, want: "LMTP"},
		{lmtp: true, esmtp: true, tls: true, auth: true, want: "LMTPSA"},
		{lmtp: true, esmtp: true, utf8: true, want: "UTF8LMTP"},
		{lmtp: true, esmtp: true, utf8: true, tls: true, want: "UTF8LMTPS"},
		{lmtp: true, esmtp: true, utf8: true, auth: true, want: "UTF8LMTPA"},
		{lmtp: true, esmtp: true, utf8: true, tls: true, auth: true, want: "UTF8LMTPSA"},
	} {
		c := &conn{srv: &Server{LMTP: tc.lmtp}, esmtp: tc.esmtp}
		if tc.tls {
			c.tls = &tls.ConnectionState{}
		}
		if tc.auth {
			c.authIdentity = "jane"
		}
		if got := c.protocol(&Envelope{SMTPUTF8: tc.utf8}); got != tc.want {
			t.Errorf("%+v: with %s, want %s", tc, got, tc.want)
		}
	}
}
