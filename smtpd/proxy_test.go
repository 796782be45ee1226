package smtpd

import (
	"bufio"
	"crypto/tls"
	"net"
	"net/netip"
	"strings"
	"testing"
)

// TestProxyTrust: from a trusted network the header is required and its
// address is the one the callbacks, the envelope and Received see; from
// any other network a header is just an unknown command.
func TestProxyTrust(t *testing.T) {
	rec := &recorder{}
	srv := &Server{Handler: rec, ProxyTrusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}
	addr := startServer(t, srv)

	c := dial(t, addr)
	c.send("PROXY TCP4 192.0.2.7 198.51.100.1 40000 25\r\n")
	c.expect("220")
	c.do("EHLO client.example", "250")
	c.message("x\r\n.\r\n", "250")
	d := rec.delivered()[0]
	if d.env.RemoteAddr.String() != "192.0.2.7:40000" || d.env.LocalAddr.String() != "198.51.100.1:25" {
		t.Fatalf("envelope addresses %v, %v", d.env.RemoteAddr, d.env.LocalAddr)
	}
	if !strings.HasPrefix(d.data, "Received: from client.example ([192.0.2.7])") {
		t.Fatalf("Received: %q", d.data)
	}

	// Trusted, but no header: closed without a greeting.
	c = dial(t, addr)
	c.send("EHLO client.example\r\n")
	c.expectClosed()

	// Untrusted: a header is refused like any unknown command.
	srv2 := &Server{ProxyTrusted: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}
	c = dial(t, startServer(t, srv2))
	c.expect("220")
	c.do("PROXY TCP4 192.0.2.7 198.51.100.1 40000 25", "500")
}

// TestProxyImplicitTLS: the PROXY header and the start of the TLS handshake
// may come in one segment; the handshake must still get its bytes.
func TestProxyImplicitTLS(t *testing.T) {
	serverTLS, clientTLS := testTLS(t)
	rec := &recorder{}
	srv := &Server{Hostname: "mx.test", Handler: rec, TLSConfig: serverTLS,
		ProxyTrusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.ServeTLS(l, "", "")
	defer srv.Close()
	raw, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	header := &headerConn{Conn: raw, header: []byte("PROXY TCP4 192.0.2.9 198.51.100.1 40000 465\r\n")}
	tc := tls.Client(header, clientTLS)
	c := &client{t: t, conn: tc, r: bufio.NewReader(tc)}
	c.expect("220 mx.test")
	c.do("EHLO client.example", "250")
	c.message("x\r\n.\r\n", "250")
	if got := rec.delivered()[0].env.RemoteAddr.String(); got != "192.0.2.9:40000" {
		t.Fatalf("remote address %s", got)
	}
}

// headerConn sends header in the same write as the first bytes written.
type headerConn struct {
	net.Conn
	header []byte
}

func (c *headerConn) Write(p []byte) (int, error) {
	if c.header != nil {
		b := append(c.header, p...)
		c.header = nil
		_, err := c.Conn.Write(b)
		return len(p), err
	}
	return c.Conn.Write(p)
}
