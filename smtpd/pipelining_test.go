package smtpd

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// The pipelining check (RFC 2920 3.1, RFC 5321 4.3.1), the greeting delay
// and the refusal of other protocols, over loopback.

// TestPipeliningSync sends one group of commands in one write and checks
// the replies: a group RFC 2920 allows is answered in full; a command that
// must be the last of its group, with more behind it, gets 554 5.5.0
// instead of its reply, and the connection is closed. The list of verbs is
// written from RFC 2920 3.1 here, not read from the state table, so that a
// wrong row in the table fails.
func TestPipeliningSync(t *testing.T) {
	const refused = "554 5.5.0"
	for _, tc := range []struct {
		name  string
		hello string // sent and answered before the group: EHLO, HELO, LHLO or none
		lmtp  bool
		group string
		want  []string // the replies; the connection is closed after a refusal
	}{
		// RFC 2920 3.1: RSET, MAIL and RCPT may stand anywhere; the last
		// command may be any.
		{"envelope group", "EHLO", false, "MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nRSET\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<c@example.org>\r\nNOOP\r\n",
			[]string{"250", "250", "250", "250", "250", "250"}},
		{"refusals in a group", "EHLO", false, "RCPT TO:<b@example.org>\r\nMAIL FROM:<a>\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nVRFY b\r\n",
			[]string{"503", "501", "250", "250", "252"}},
		// RFC 3030 4.2: BDAT may be pipelined; its chunk follows it.
		{"chunks", "EHLO", false, "MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nBDAT 5\r\nhelloBDAT 3 LAST\r\nabcQUIT\r\n",
			[]string{"250", "250", "250", "250", "221"}},
		{"LMTP group", "LHLO", true, "MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nRSET\r\n",
			[]string{"250", "250", "250"}},

		// RFC 2920 3.1: EHLO, DATA, VRFY, EXPN, TURN, QUIT and NOOP end
		// their group; so do the commands of extensions that say
		// nothing else (AUTH), STARTTLS (RFC 3207 4), and here HELO,
		// LHLO, HELP and unknown verbs.
		{"EHLO", "EHLO", false, "EHLO client.test\r\nRSET\r\n", []string{refused}},
		{"HELO", "EHLO", false, "HELO client.test\r\nRSET\r\n", []string{refused}},
		{"LHLO", "LHLO", true, "LHLO client.test\r\nRSET\r\n", []string{refused}},
		{"DATA", "EHLO", false, "MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\nSubject: early\r\n\r\n.\r\n",
			[]string{"250", "250", refused}},
		{"DATA refused", "EHLO", false, "MAIL FROM:<a@example.org>\r\nDATA\r\nRSET\r\n", []string{"250", refused}},
		{"VRFY", "EHLO", false, "VRFY b\r\nRSET\r\n", []string{refused}},
		{"EXPN", "EHLO", false, "EXPN list\r\nRSET\r\n", []string{refused}},
		{"HELP", "EHLO", false, "HELP\r\nRSET\r\n", []string{refused}},
		{"NOOP", "EHLO", false, "NOOP\r\nRSET\r\n", []string{refused}},
		{"QUIT", "EHLO", false, "QUIT\r\nRSET\r\n", []string{refused}},
		{"STARTTLS", "EHLO", false, "STARTTLS\r\nEHLO injected.test\r\n", []string{refused}},
		{"AUTH", "EHLO", false, "AUTH PLAIN AGEAYg==\r\nMAIL FROM:<a@example.org>\r\n", []string{refused}},
		{"TURN", "EHLO", false, "TURN\r\nRSET\r\n", []string{refused}},
		{"unknown verb", "EHLO", false, "FROB\r\nRSET\r\n", []string{refused}},

		// RFC 5321 4.3.1: without PIPELINING, which only EHLO and LHLO
		// negotiate, the client waits for every reply. Before EHLO the
		// reply has no enhanced code (RFC 2034).
		{"before EHLO", "", false, "RSET\r\nRSET\r\n", []string{"554 SMTP"}},
		{"EHLO and more before its reply", "", false, "EHLO client.test\r\nMAIL FROM:<a@example.org>\r\n", []string{"554 SMTP"}},
		{"after HELO", "HELO", false, "MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\n", []string{"554 SMTP"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{}
			c := dial(t, startServer(t, &Server{Handler: rec, LMTP: tc.lmtp, Expand: func(context.Context, *Envelope, string) ([]string, error) { return []string{"b@example.org"}, nil }}))
			c.expect("220")
			if tc.hello != "" {
				c.do(tc.hello+" client.test", "250")
			}
			c.send(tc.group)
			for _, want := range tc.want {
				c.expect(want)
			}
			if last := tc.want[len(tc.want)-1]; strings.HasPrefix(last, "554") || last == "221" {
				c.expectClosed()
			} else {
				c.do("QUIT", "221")
			}
			if n := len(rec.delivered()); n != 0 && tc.name != "chunks" {
				t.Errorf("%d messages delivered", n)
			}
		})
	}
}

// TestPipeliningSmuggling: a message end followed in the same write by
// MAIL, RCPT, DATA and a second message (transaction stuffing, the shape
// of SMTP smuggling) delivers the first message only. With
// DisablePipeliningSync both are delivered, as the client asked.
func TestPipeliningSmuggling(t *testing.T) {
	const stuffed = "first\r\n.\r\nMAIL FROM:<evil@example.org>\r\nRCPT TO:<victim@example.org>\r\nDATA\r\nsecond\r\n.\r\n"
	rec := &recorder{}
	c := greeted(t, startServer(t, &Server{Handler: rec, DisableReceived: true}))
	c.do("MAIL FROM:<a@example.org>", "250")
	c.do("RCPT TO:<b@example.org>", "250")
	c.do("DATA", "354")
	c.send(stuffed)
	c.expect("250 2.0.0 OK: queued")
	c.expect("250")
	c.expect("250")
	c.expect("554 5.5.0")
	c.expectClosed()
	if msgs := rec.delivered(); len(msgs) != 1 || msgs[0].data != "first\r\n" {
		t.Fatalf("delivered %+v", msgs)
	}

	rec = &recorder{}
	c = greeted(t, startServer(t, &Server{Handler: rec, DisableReceived: true, DisablePipeliningSync: true}))
	c.do("MAIL FROM:<a@example.org>", "250")
	c.do("RCPT TO:<b@example.org>", "250")
	c.do("DATA", "354")
	c.send(stuffed)
	for _, want := range []string{"250", "250", "250", "354", "250"} {
		c.expect(want)
	}
	if msgs := rec.delivered(); len(msgs) != 2 || msgs[1].data != "second\r\n" {
		t.Fatalf("delivered %+v", msgs)
	}
}

// TestPipeliningAuthenticated: an authenticated client pipelines as RFC
// 2920 allows, and is held to the same rules as any other.
func TestPipeliningAuthenticated(t *testing.T) {
	rec := &recorder{}
	srv := &Server{Handler: rec, AllowInsecureAuth: true,
		Authenticate: func(ctx context.Context, env *Envelope, identity, user, password string) error {
			if user != "jane" || password != "secret" {
				return ErrAuthFailed
			}
			return nil
		}}
	c := greeted(t, startServer(t, srv))
	c.do("AUTH PLAIN AGphbmUAc2VjcmV0", "235")
	c.send("MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n")
	c.expect("250")
	c.expect("250")
	c.expect("354")
	c.send("x\r\n.\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\nearly\r\n.\r\n")
	c.expect("250")
	c.expect("250")
	c.expect("250")
	c.expect("554 5.5.0")
	c.expectClosed()
	if n := len(rec.delivered()); n != 1 {
		t.Fatalf("%d messages delivered, want 1", n)
	}
}

// TestPipeliningAfterSTARTTLS: the session starts over after the
// handshake, PIPELINING with it, so the client must greet again before it
// may pipeline.
func TestPipeliningAfterSTARTTLS(t *testing.T) {
	serverTLS, clientTLS := testTLS(t)
	c := greeted(t, startServer(t, &Server{TLSConfig: serverTLS}))
	c.do("STARTTLS", "220")
	c.upgrade(clientTLS)
	c.send("RSET\r\nRSET\r\n")
	c.expect("554 SMTP")
	c.expectClosed()

	c = greeted(t, startServer(t, &Server{TLSConfig: serverTLS}))
	c.do("STARTTLS", "220")
	c.upgrade(clientTLS)
	c.do("EHLO client.test", "250")
	c.send("RSET\r\nRSET\r\n")
	c.expect("250")
	c.expect("250")
}

// sessionStarted returns a Logger that reports on the channel each
// session the server starts, so that a test knows the server accepted its
// connection without waiting for a reply that the case holds back.
func sessionStarted() (*slog.Logger, <-chan struct{}) {
	ch := make(chan struct{}, 10)
	h := &funcHandler{fn: func(r slog.Record) {
		if r.Message == "session started" {
			ch <- struct{}{}
		}
	}}
	return slog.New(h), ch
}

type funcHandler struct{ fn func(slog.Record) }

func (h *funcHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *funcHandler) Handle(_ context.Context, r slog.Record) error {
	h.fn(r)
	return nil
}
func (h *funcHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *funcHandler) WithGroup(string) slog.Handler      { return h }

// TestGreetingDelay: a client that talks within GreetingDelay gets 554 in
// place of the greeting and is cut off (RFC 5321 4.3.1; postscreen's
// pregreet test), whatever DisablePipeliningSync says; one that waits
// gets its greeting; implicit TLS has no delay; Shutdown answers a
// session that is waiting for its greeting.
func TestGreetingDelay(t *testing.T) {
	for _, sync := range []bool{true, false} {
		rec := &recorder{}
		// An hour: the client talks at once, so the test never waits for
		// the delay, and a server that waited for it would fail the
		// test at the client's deadline.
		c := dial(t, startServer(t, &Server{Handler: rec, GreetingDelay: time.Hour, DisablePipeliningSync: !sync}))
		c.send("EHLO client.test\r\nMAIL FROM:<a@example.org>\r\n")
		c.expect("554 mx.test SMTP protocol synchronization error")
		c.expectClosed()
	}

	// A patient client: the greeting comes when the delay is over.
	c := dial(t, startServer(t, &Server{GreetingDelay: 50 * time.Millisecond}))
	c.expect("220 mx.test")
	c.do("EHLO client.test", "250")

	// Implicit TLS: the handshake made the client wait already.
	serverTLS, clientTLS := testTLS(t)
	srv := &Server{TLSConfig: serverTLS, GreetingDelay: time.Hour}
	c = dial(t, startServing(t, srv, func(l net.Listener) error { return srv.ServeTLS(l, "", "") }))
	c.upgrade(clientTLS)
	c.expect("220 mx.test")

	// Shutdown while the server listens before the greeting.
	logger, started := sessionStarted()
	srv = &Server{GreetingDelay: time.Hour, Logger: logger}
	c = dial(t, startServer(t, srv))
	<-started
	done := make(chan error, 1)
	go func() { done <- srv.Shutdown(context.Background()) }()
	c.expect("421")
	c.expectClosed()
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

// TestEarlyTalkWithProxyHeader: a command that came in one write with the
// PROXY header was sent before the greeting; without a greeting delay the
// server still sees it, as input it has read.
func TestEarlyTalkWithProxyHeader(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	const header = "PROXY TCP4 192.0.2.7 198.51.100.1 40000 25\r\n"
	c := dial(t, startServer(t, &Server{ProxyTrusted: trusted}))
	c.send(header + "EHLO client.test\r\n")
	c.expect("554 mx.test SMTP protocol synchronization error")
	c.expectClosed()

	c = dial(t, startServer(t, &Server{ProxyTrusted: trusted, DisablePipeliningSync: true}))
	c.send(header + "EHLO client.test\r\n")
	c.expect("220")
	c.expect("250")
}

// TestNotSMTP: a first line that is an HTTP request, or that does not
// start with a letter, gets one reply and the connection is closed at
// once, not a 500 for each line (the ALPACA attack; Postfix's
// smtpd_forbidden_commands). The first octet is judged as soon as it
// arrives: a TLS handshake sent to a plaintext port has no line end to
// wait for. This holds with the pipelining check off too.
func TestNotSMTP(t *testing.T) {
	for _, first := range []string{
		"GET / HTTP/1.1\r\nHost: mx.test\r\n\r\n",
		"POST /form HTTP/1.1\r\nHost: mx.test\r\nContent-Length: 26\r\n\r\nMAIL FROM:<a@example.org>\r\n",
		"HEAD / HTTP/1.0\r\n\r\n",
		"PUT /x HTTP/1.1\r\n",
		"CONNECT mx.test:25 HTTP/1.1\r\n",
		"OPTIONS * HTTP/1.1\r\n",
		"DELETE /x HTTP/1.1\r\n",
		"PROPFIND /dav HTTP/1.1\r\n", // a method RFC 9110 does not list
		"get / HTTP/1.1\r\n",
		"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03", // a TLS ClientHello
		"\r\n",
		" EHLO client.test\r\n",
		"\x00EHLO client.test\r\n",
		"<html>\r\n",
	} {
		for _, sync := range []bool{true, false} {
			c := dial(t, startServer(t, &Server{DisablePipeliningSync: !sync}))
			c.expect("220")
			c.send(first)
			c.expect("554 Not an SMTP command")
			c.expectClosed()
		}
	}

	// SMTP that merely looks odd, and HTTP after the first line, get
	// the usual replies.
	c := dial(t, startServer(t, &Server{}))
	c.expect("220")
	c.do("GET", "500")
	c.do("get /", "500")
	c.do("EHLO client.test", "250")
	c.do("GET / HTTP/1.1", "500")
	c.do("NOOP", "250")
}
