package smtpd

import (
	"bufio"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// Connection limits: MaxConnections for the server, MaxConnectionsPerIP for
// one client, and what a refused connection costs.

// dialFrom dials addr from the loopback address local (Linux routes all of
// 127.0.0.0/8 to lo), so that a test can be several clients.
func dialFrom(t testing.TB, local, addr string) *client {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial from %s: %v", local, err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(20 * time.Second)) // see dial
	return &client{t: t, conn: conn, r: bufio.NewReader(conn)}
}

// expectGreeted dials from local until the server greets it: the end of a
// session and the release of its slot race with the next accept, so allow
// the refusal a few times.
func expectGreeted(t *testing.T, local, addr string) *client {
	t.Helper()
	for i := 0; ; i++ {
		c := dialFrom(t, local, addr)
		lines := c.readReply()
		if strings.HasPrefix(lines[0], "220") {
			return c
		}
		if i == 100 {
			t.Fatalf("still refused: %q", lines)
		}
	}
}

const replyFromIP = "421 mx.test Too many connections from your address"

// TestMaxConnectionsPerIP: the connection beyond the per-client limit gets
// 421 and is closed, while another client is served; when one of the
// client's sessions ends, it may connect again.
func TestMaxConnectionsPerIP(t *testing.T) {
	addr := startServer(t, &Server{MaxConnections: 10, MaxConnectionsPerIP: 2})
	a := greeted(t, addr)
	greeted(t, addr)
	c := dial(t, addr)
	c.expect(replyFromIP) // a greeting: no enhanced code (RFC 2034 3)
	c.expectClosed()
	other := dialFrom(t, "127.0.0.2", addr)
	other.expect("220")
	a.do("QUIT", "221")
	a.expectClosed()
	expectGreeted(t, "127.0.0.1", addr)
}

// TestMaxConnectionsPerIPDefault: by default one client gets 50
// connections, and never more than half of MaxConnections, so that one
// client cannot take every slot (20 clients from one address once held
// all of "-max-conns 20"); clients on loopback, this machine's own, are
// spared, as Postfix spares $mynetworks. The clients on other hosts come
// through the PROXY protocol.
func TestMaxConnectionsPerIPDefault(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	proxied := func(addr, src string) *client {
		c := dial(t, addr)
		c.send("PROXY TCP4 " + src + " 198.51.100.1 40000 25\r\n")
		return c
	}
	addr := startServer(t, &Server{ProxyTrusted: trusted})
	for i := 0; i < 50; i++ {
		proxied(addr, "192.0.2.1").expect("220")
	}
	c := proxied(addr, "192.0.2.1")
	c.expect(replyFromIP)
	c.expectClosed()
	local := startServer(t, &Server{}) // no PROXY: the clients are on loopback
	for i := 0; i < 60; i++ {
		dial(t, local).expect("220") // loopback: no limit by default
	}

	addr = startServer(t, &Server{MaxConnections: 4, ProxyTrusted: trusted})
	for i := 0; i < 2; i++ {
		proxied(addr, "192.0.2.1").expect("220")
	}
	c = proxied(addr, "192.0.2.1")
	c.expect(replyFromIP)
	c.expectClosed()
	for i := 0; i < 2; i++ {
		proxied(addr, "192.0.2.2").expect("220")
	}
	c = proxied(addr, "192.0.2.3")
	c.expect("421 mx.test Too many connections, try again later")
	c.expectClosed()
}

// TestMaxConnectionsPerIPNoLimit: a negative MaxConnectionsPerIP lets one
// client take every slot MaxConnections allows.
func TestMaxConnectionsPerIPNoLimit(t *testing.T) {
	addr := startServer(t, &Server{MaxConnections: 3, MaxConnectionsPerIP: -1})
	for i := 0; i < 3; i++ {
		dial(t, addr).expect("220")
	}
	c := dial(t, addr)
	c.expect("421 mx.test Too many connections, try again later")
	c.expectClosed()
}

// TestMaxConnectionsPerIPProxy: behind the PROXY protocol the client is the
// address the header carries, not the proxy's, whose connections all come
// from one address; and the count is released with the header's address.
func TestMaxConnectionsPerIPProxy(t *testing.T) {
	srv := &Server{MaxConnections: 10, MaxConnectionsPerIP: 1,
		ProxyTrusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}
	addr := startServer(t, srv)
	proxied := func(src string) *client {
		c := dial(t, addr)
		c.send("PROXY TCP4 " + src + " 198.51.100.1 40000 25\r\n")
		return c
	}
	a := proxied("192.0.2.1")
	a.expect("220")
	b := proxied("192.0.2.1")
	b.expect(replyFromIP)
	b.expectClosed()
	proxied("192.0.2.2").expect("220")

	a.do("QUIT", "221")
	a.expectClosed()
	for i := 0; ; i++ {
		lines := proxied("192.0.2.1").readReply()
		if strings.HasPrefix(lines[0], "220") {
			break
		}
		if i == 100 {
			t.Fatalf("192.0.2.1 still refused after its session ended: %q", lines)
		}
	}
}
