package smtpd

import (
	"net/netip"
	"time"

	"smtpd/internal/proxyproto"
)

// The PROXY protocol (HAProxy's "The PROXY protocol, Versions 1 & 2"): a
// proxy in front of the server tells it the addresses of the connection it
// relays, in a header that is the first bytes of the connection. Only a
// proxy the server trusts may send one (section 2: a receiver must never
// guess whether a header is present): ProxyTrusted says which, this file
// expects the header from them, and internal/proxyproto parses it.

// proxyHeaderTimeout bounds the wait for a PROXY header; the protocol's
// spec (2) asks a receiver to wait at least 3 seconds.
const proxyHeaderTimeout = 10 * time.Second

// readProxy reads the PROXY protocol header that a connection from a
// trusted network (Server.ProxyTrusted) must begin with, and takes the
// addresses it carries. It reports whether the session goes on: a
// connection whose header is missing or invalid is closed without a word,
// since the balancer in front would not understand one. A header from an
// untrusted network is not looked for: it reaches the command reader and
// is refused as an unknown command.
func (c *conn) readProxy() bool {
	ip, ok := addrIP(c.rwc.RemoteAddr())
	if !ok || !c.srv.proxyTrusted(ip) {
		return true
	}
	c.in.setDeadline(time.Now().Add(proxyHeaderTimeout), 0, false)
	src, dst, n, err := proxyproto.ReadHeader(c.br)
	if err != nil {
		c.srv.logInfo("PROXY header refused", "peer", c.rwc.RemoteAddr().String(), "error", err)
		c.ended = err
		return false
	}
	if c.tracer != nil {
		header, _ := c.br.Peek(n)
		c.trace(&TraceEvent{Kind: TraceProxy, Data: header, Remote: src, Local: dst})
	}
	c.br.Discard(n)
	if src != nil { // nil: a health check (v2 LOCAL, v1 UNKNOWN)
		c.remote, c.local = src, dst
	}
	return true
}

func (srv *Server) proxyTrusted(ip netip.Addr) bool {
	for _, p := range srv.ProxyTrusted {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}
