package smtpd

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"smtpd/internal/selfsigned"
)

// STARTTLS (RFC 3207) and implicit TLS (RFC 8314), with real handshakes
// over loopback and certificates made here.

// testTLS returns a server configuration with a fresh self-signed
// certificate for mx.test and 127.0.0.1, and a client configuration that
// trusts it.
func testTLS(t testing.TB) (server, client *tls.Config) {
	t.Helper()
	cert, err := selfsigned.New("mx.test", []string{"mx.test", "127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	server = &tls.Config{Certificates: []tls.Certificate{cert}}
	client = &tls.Config{RootCAs: selfsigned.Pool(cert), ServerName: "mx.test"}
	return server, client
}

// startTLS sends STARTTLS, expects 220 and runs the client's handshake;
// the client then talks through TLS.
func (c *client) startTLS(config *tls.Config) {
	c.t.Helper()
	c.do("STARTTLS", "220 2.0.0")
	c.upgrade(config)
}

func (c *client) upgrade(config *tls.Config) {
	c.t.Helper()
	if c.r.Buffered() > 0 {
		c.t.Fatalf("the server sent more after 220: %d octets", c.r.Buffered())
	}
	tc := tls.Client(c.conn, config)
	if err := tc.Handshake(); err != nil {
		c.t.Fatalf("handshake: %v", err)
	}
	c.conn = tc
	c.r = bufio.NewReader(tc)
}

func hasLine(lines []string, s string) bool {
	for _, l := range lines {
		if l[4:] == s {
			return true
		}
	}
	return false
}

// TestStartTLS: offered before TLS only; the session starts over after the
// handshake (RFC 3207 4.2); the callbacks see the TLS state; Received says
// ESMTPS.
func TestStartTLS(t *testing.T) {
	serverTLS, clientTLS := testTLS(t)
	rec := &recorder{}
	addr := startServer(t, &Server{Handler: rec, TLSConfig: serverTLS})
	c := dial(t, addr)
	c.expect("220")
	if lines := c.do("EHLO client.example", "250"); !hasLine(lines, "STARTTLS") {
		t.Fatalf("STARTTLS not offered: %q", lines)
	}
	c.do("STARTTLS now", "501 5.5.4")
	c.do("MAIL FROM:<before@example.org>", "250")
	c.startTLS(clientTLS)
	// Everything before is forgotten: no greeting, no transaction.
	c.do("MAIL FROM:<a@example.org>", "503 Bad sequence") // not ESMTP yet: no enhanced code
	if lines := c.do("EHLO client.example", "250"); hasLine(lines, "STARTTLS") {
		t.Fatalf("STARTTLS offered inside TLS: %q", lines)
	}
	c.do("STARTTLS", "503 5.5.1 TLS already active")
	c.do("RCPT TO:<b@example.org>", "503")
	c.message("hi\r\n.\r\n", "250")
	env := rec.delivered()[0].env
	if env.TLS == nil || env.TLS.ServerName != "mx.test" || !env.TLS.HandshakeComplete {
		t.Fatalf("envelope TLS state %+v", env.TLS)
	}
	if env.ReversePath.String() != "a@example.org" {
		t.Fatalf("reverse-path %q", env.ReversePath)
	}
	if !strings.Contains(rec.delivered()[0].data, " with ESMTPS id ") {
		t.Fatalf("Received field: %q", rec.delivered()[0].data)
	}
}

// TestStartTLSPipelinedPlaintext: commands pipelined behind STARTTLS, in
// the same segment, are never run after the handshake (CVE-2011-0411; the
// 2021 "NO STARTTLS" study's payload). By default STARTTLS must end its
// group (RFC 3207 4), so the client is refused before any handshake;
// with the check off, the plaintext is dropped.
func TestStartTLSPipelinedPlaintext(t *testing.T) {
	serverTLS, clientTLS := testTLS(t)
	for _, payload := range []string{
		"STARTTLS\r\nEHLO x\r\n",
		"STARTTLS\r\nMAIL FROM:<evil@example.org>\r\nRCPT TO:<victim@example.org>\r\n",
	} {
		c := greeted(t, startServer(t, &Server{TLSConfig: serverTLS}))
		c.send(payload)
		c.expect("554 5.5.0")
		c.expectClosed()

		rec := &recorder{}
		c = greeted(t, startServer(t, &Server{Handler: rec, TLSConfig: serverTLS, DisablePipeliningSync: true}))
		c.send(payload)
		c.expect("220 2.0.0")
		c.upgrade(clientTLS)
		// Had the injected EHLO run, its 250 would come first; had the
		// injected MAIL run, RCPT would be accepted.
		c.do("NOOP", "250 OK")
		c.do("EHLO client.example", "250")
		c.do("RCPT TO:<b@example.org>", "503 5.5.1")
	}
}

// TestStartTLSHandshakeFails: a failed handshake ends the connection; the
// session never goes on in the clear.
func TestStartTLSHandshakeFails(t *testing.T) {
	serverTLS, _ := testTLS(t)
	c := greeted(t, startServer(t, &Server{TLSConfig: serverTLS, TLSHandshakeTimeout: time.Second}))
	c.do("STARTTLS", "220")
	c.send("EHLO not a TLS record\r\n")
	b, err := io.ReadAll(c.r)
	if strings.Contains(string(b), "250") {
		t.Fatalf("the server answered in the clear: %q", b)
	}
	if err != nil && !isConnReset(err) {
		t.Fatalf("read: %v", err)
	}
}

// TestStartTLSUnavailable: not offered and 502 without TLSConfig; 454 when
// the configuration has no certificate to present.
func TestStartTLSUnavailable(t *testing.T) {
	c := greeted(t, startServer(t, &Server{}))
	c.do("STARTTLS", "502 5.5.1")
	c = greeted(t, startServer(t, &Server{TLSConfig: &tls.Config{}}))
	c.do("STARTTLS", "454 4.7.0")
	c.do("NOOP", "250")
}

// TestRequireTLS: MAIL before STARTTLS gets 530 5.7.0; a malformed MAIL
// gets its 501 first, the guard holding only for a MAIL that parses.
func TestRequireTLS(t *testing.T) {
	serverTLS, clientTLS := testTLS(t)
	c := greeted(t, startServer(t, &Server{TLSConfig: serverTLS, RequireTLS: true}))
	c.do("MAIL FROM:a@example.org", "501 5.1.7")
	c.do("MAIL FROM:<a@example.org>", "530 5.7.0")
	c.startTLS(clientTLS)
	c.do("EHLO client.example", "250")
	c.do("MAIL FROM:<a@example.org>", "250")
}

// TestImplicitTLS: ServeTLS starts every connection with a handshake
// (RFC 8314 3.3); STARTTLS is not offered there.
func TestImplicitTLS(t *testing.T) {
	serverTLS, clientTLS := testTLS(t)
	rec := &recorder{}
	srv := &Server{Hostname: "mx.test", Handler: rec, TLSConfig: serverTLS}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.ServeTLS(l, "", "")
	defer srv.Close()
	conn, err := tls.Dial("tcp", l.Addr().String(), clientTLS)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := &client{t: t, conn: conn, r: bufio.NewReader(conn)}
	c.expect("220 mx.test")
	if lines := c.do("EHLO client.example", "250"); hasLine(lines, "STARTTLS") {
		t.Fatalf("STARTTLS offered on implicit TLS: %q", lines)
	}
	c.message("x\r\n.\r\n", "250")
	if rec.delivered()[0].env.TLS == nil {
		t.Fatal("no TLS state in the envelope")
	}

	// A plaintext client gets nothing and is cut off.
	raw := dial(t, l.Addr().String())
	raw.send("EHLO plain.example\r\n")
	if b, _ := io.ReadAll(raw.r); strings.Contains(string(b), "220") {
		t.Fatalf("plaintext client got %q", b)
	}

	// ServeTLS without a certificate refuses to start.
	l2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := (&Server{}).ServeTLS(l2, "", ""); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("ServeTLS without certificate: %v", err)
	}
}

// TestTLSStateReachesCallbacks: CheckSender already sees the TLS state.
func TestTLSStateReachesCallbacks(t *testing.T) {
	serverTLS, clientTLS := testTLS(t)
	seen := make(chan *tls.ConnectionState, 1)
	srv := &Server{TLSConfig: serverTLS, CheckSender: func(ctx context.Context, env *Envelope) error {
		seen <- env.TLS
		return nil
	}}
	c := greeted(t, startServer(t, srv))
	c.startTLS(clientTLS)
	c.do("EHLO client.example", "250")
	c.do("MAIL FROM:<a@example.org>", "250")
	if st := <-seen; st == nil || st.Version < tls.VersionTLS12 {
		t.Fatalf("CheckSender saw TLS state %+v", st)
	}
}

// TestStartTLSForgetsAuth: an identity given in the clear does not survive
// the handshake (RFC 3207 4.2).
func TestStartTLSForgetsAuth(t *testing.T) {
	serverTLS, clientTLS := testTLS(t)
	srv := authServer(&recorder{})
	srv.TLSConfig, srv.AllowInsecureAuth, srv.RequireAuth = serverTLS, true, true
	c := greeted(t, startServer(t, srv))
	c.do("AUTH PLAIN "+b64("\x00jane\x00secret"), "235")
	c.startTLS(clientTLS)
	c.do("EHLO client.example", "250")
	c.do("MAIL FROM:<a@example.org>", "530 5.7.0 Authentication required")
	c.do("AUTH PLAIN "+b64("\x00jane\x00secret"), "235")
	c.do("MAIL FROM:<a@example.org>", "250")
}

// TestStartTLSHandshakeTimeout: a client that says nothing after 220 is
// cut off at TLSHandshakeTimeout.
func TestStartTLSHandshakeTimeout(t *testing.T) {
	serverTLS, _ := testTLS(t)
	c := greeted(t, startServer(t, &Server{TLSConfig: serverTLS, TLSHandshakeTimeout: 200 * time.Millisecond}))
	c.do("STARTTLS", "220")
	c.expectClosed()
}

// TestWrapConn: the wrapper sees the session in the clear, before and
// after STARTTLS.
func TestWrapConn(t *testing.T) {
	serverTLS, clientTLS := testTLS(t)
	var mu sync.Mutex
	var seen strings.Builder
	srv := &Server{TLSConfig: serverTLS, WrapConn: func(c net.Conn) net.Conn {
		if tc, ok := c.(*tls.Conn); ok {
			if _, wrapped := tc.NetConn().(*tapConn); !wrapped {
				t.Error("the TLS layer is not over the first wrapper")
			}
		}
		return &tapConn{Conn: c, mu: &mu, seen: &seen}
	}}
	c := greeted(t, startServer(t, srv))
	c.startTLS(clientTLS)
	c.do("EHLO inside.example", "250")
	c.do("QUIT", "221")
	c.expectClosed()
	mu.Lock()
	defer mu.Unlock()
	for _, want := range []string{"EHLO client.test\r\n", "STARTTLS\r\n", "220 2.0.0 Ready to start TLS\r\n", "EHLO inside.example\r\n", "221 2.0.0"} {
		if !strings.Contains(seen.String(), want) {
			t.Errorf("the wrapper did not see %q", want)
		}
	}
}

// tapConn copies what is read and written into seen.
type tapConn struct {
	net.Conn
	mu   *sync.Mutex
	seen *strings.Builder
}

func (c *tapConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.mu.Lock()
	if _, ok := c.Conn.(*tls.Conn); ok || !bytesLookLikeTLS(p[:n]) {
		c.seen.Write(p[:n])
	}
	c.mu.Unlock()
	return n, err
}

func (c *tapConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	if _, ok := c.Conn.(*tls.Conn); ok || !bytesLookLikeTLS(p) {
		c.seen.Write(p)
	}
	c.mu.Unlock()
	return c.Conn.Write(p)
}

// bytesLookLikeTLS: a TLS record starts with a content type 20 to 23.
func bytesLookLikeTLS(p []byte) bool { return len(p) > 0 && p[0] >= 20 && p[0] <= 23 }
