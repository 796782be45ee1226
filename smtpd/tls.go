package smtpd

import (
	"crypto/tls"
	"net"
	"time"
)

// STARTTLS (RFC 3207) and implicit TLS (RFC 8314).

var (
	replyReadyTLS       = &Reply{Code: 220, Enhanced: "2.0.0", Text: "Ready to start TLS"}
	replyTLSActive      = &Reply{Code: 503, Enhanced: "5.5.1", Text: "TLS already active"}
	replyTLSUnavailable = &Reply{Code: 454, Enhanced: "4.7.0", Text: "TLS not available due to temporary reason"}
	replyTLSRequired    = &Reply{Code: 530, Enhanced: "5.7.0", Text: "Must issue a STARTTLS command first"}
)

// starttls upgrades the session to TLS. After the handshake the session
// starts over: the client must greet again, and everything it said before
// is forgotten, since it was said in the clear (RFC 3207 4.2).
func (c *conn) starttls(arg string) bool {
	// The table's guards have refused STARTTLS when it is not offered
	// and when TLS is active (RFC 3207 4.2: not offered after TLS).
	switch {
	case arg != "":
		c.reply(replyNoArgument) // RFC 3207 4
		return false
	case !canServeTLS(c.srv.TLSConfig):
		c.reply(replyTLSUnavailable)
		return false
	}
	c.reply(replyReadyTLS)
	if c.flush() != nil {
		c.state = stateDone
		return false
	}
	// Whatever the client sent after STARTTLS and before the handshake
	// came in the clear, where anyone on the path could have added it
	// (CVE-2011-0411): it is dropped, never run as commands after the
	// handshake. Bytes still in flight break the handshake instead.
	if n := c.br.Buffered(); n > 0 {
		c.br.Discard(n)
		c.logInfo("discarded plaintext sent after STARTTLS", "octets", n)
	}
	if !c.handshake(c.srv.TLSConfig, nil) {
		// Never go on in the clear after a failed handshake.
		c.state = stateDone
		return false
	}
	c.env = nil
	c.helloName, c.esmtp = "", false
	c.authIdentity = ""
	return true
}

// handshake puts a TLS layer over the connection and runs the handshake,
// within TLSHandshakeTimeout. early holds bytes of the handshake already
// read from the connection. It reports whether the handshake succeeded.
func (c *conn) handshake(config *tls.Config, early []byte) bool {
	var under net.Conn = c.rwc
	if len(early) > 0 {
		under = &earlyConn{Conn: c.rwc, early: early}
	}
	tc := tls.Server(under, config)
	c.setCloser(nil)
	tc.SetDeadline(deadlineIn(limitOf(c.srv.TLSHandshakeTimeout, DefaultTLSHandshakeTimeout)))
	if err := tc.HandshakeContext(c.ctx); err != nil {
		c.logInfo("TLS handshake failed", "error", err)
		c.ended = err
		return false
	}
	tc.SetDeadline(time.Time{})
	state := tc.ConnectionState()
	c.tls = &state
	if c.tracer != nil {
		c.trace(&TraceEvent{Kind: TraceTLS, TLS: c.tls, Implicit: c.implicitTLS != nil})
	}
	c.stream = tc
	if c.srv.WrapConn != nil {
		c.stream = c.srv.WrapConn(tc)
	}
	c.setCloser(tc)
	// The handshake cleared the deadline, and the TLS layer's must be
	// exact (see setDeadline).
	c.armed, c.lazyDeadline = time.Time{}, false
	c.br.Reset(&c.in)
	// No reply is queued (STARTTLS flushed its 220), so bw is nil and
	// the next writer writes to c.stream; a queued one would be reset.
	if c.bw != nil {
		c.bw.Reset(&c.wr)
	}
	return true
}

// earlyConn is a connection some of whose first bytes were read already.
type earlyConn struct {
	net.Conn
	early []byte
}

func (c *earlyConn) Read(p []byte) (int, error) {
	if len(c.early) > 0 {
		n := copy(p, c.early)
		c.early = c.early[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// canServeTLS reports whether config can present a certificate.
func canServeTLS(config *tls.Config) bool {
	return len(config.Certificates) > 0 || config.GetCertificate != nil || config.GetConfigForClient != nil
}
