package smtpd

import (
	"bytes"
	"errors"
	"net"
	"time"
)

// The start of a session: the connection check and the greeting (RFC 5321
// 4.3.1, 3.1), and what the server does with a client that talks before
// it, or does not speak SMTP at all.

// greet calls the connection check and sends the greeting (RFC 5321 4.3.1):
// 220 when the client may proceed, 554 when it is refused (3.1). It reports
// whether the session goes on.
func (c *conn) greet() bool {
	srv := c.srv
	c.state = stateConnected
	protocol := "ESMTP "
	if srv.LMTP {
		protocol = "LMTP "
	}
	greeting := &Reply{Code: 220, Text: protocol + orString(srv.Banner, "smtpd")}
	if srv.CheckConnection != nil {
		err := c.call("CheckConnection", func() error {
			return srv.CheckConnection(c.ctx, c.remote)
		})
		if err != nil {
			c.state = stateRefused
			greeting = &Reply{Code: 554, Text: "No SMTP service here"}
			var r *Reply
			if errors.As(err, &r) {
				greeting.Text = r.Text
				if r.code() == 421 {
					c.send(srv.greetingLine(r), r.code())
					c.flush()
					return false
				}
			}
			c.logInfo("connection refused by CheckConnection")
		}
	}
	if c.state != stateRefused && c.talkedFirst() {
		return false
	}
	c.send(srv.greetingLine(greeting), greeting.code())
	return true
}

// talkedFirst reports whether the session ends before the greeting: because
// the client spoke first, which it must not (RFC 5321 4.3.1), or left.
// Input that came with a PROXY header is early, unless
// DisablePipeliningSync; with a GreetingDelay, so is anything that arrives
// within it. An early client gets 554 (RFC 5321 3.1) and is cut off.
func (c *conn) talkedFirst() bool {
	srv := c.srv
	if c.implicitTLS != nil {
		return false // the client waited for the handshake
	}
	early := !srv.DisablePipeliningSync && c.br.Buffered() > 0
	if !early && srv.GreetingDelay > 0 {
		// Idle: Shutdown may answer for the session while it waits.
		c.in.setDeadline(time.Now().Add(srv.GreetingDelay), 0, true)
		_, err := c.br.Peek(1)
		var ne net.Error
		switch {
		case err == nil:
			early = true
		case errors.As(err, &ne) && ne.Timeout():
			// Silence, as it should be.
		default:
			c.readFailed(err)
			return true
		}
	}
	if early {
		c.logInfo("client talked before the greeting", "octets", c.br.Buffered())
		c.traceBuffered()
		c.send(srv.greetingLine(replyPregreet), replyPregreet.code())
	}
	return early
}

// speaksSMTP looks at the client's first octet, as soon as it arrives: every
// SMTP command starts with a letter (RFC 5321 4.1.1). Anything else is
// another protocol talking to the wrong port (a TLS handshake, a binary
// probe), and gets one reply and the end of the session instead of a 500
// for each line it may or may not ever end (Postfix's
// smtpd_forbidden_commands has the same rule). It reports whether the
// session goes on.
func (c *conn) speaksSMTP() bool {
	c.waitCommand(true)
	b, err := c.br.Peek(1)
	if err != nil {
		c.readFailed(err)
		return false
	}
	if !isLetter(b[0]) {
		c.logInfo("not SMTP: the first octet is not a letter")
		c.traceBuffered()
		c.replyAndClose(replyNotSMTP)
		return false
	}
	return true
}

// isHTTPRequest reports whether line, the session's first, is an HTTP
// request line (RFC 9112 3: method SP request-target SP HTTP-version): a
// browser or proxy made to talk to an SMTP port, as in the ALPACA attack,
// whose headers and body would follow as SMTP commands. The methods of
// RFC 9110 9 are not SMTP verbs, so their name and a target are enough;
// any other method shows by its version.
func isHTTPRequest(line []byte) bool {
	method, rest, ok := bytes.Cut(line, []byte(" "))
	if !ok || len(rest) == 0 {
		return false
	}
	switch string(method) {
	case "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH":
		return true
	}
	_, version, ok := bytes.Cut(rest, []byte(" "))
	return ok && bytes.HasPrefix(version, []byte("HTTP/"))
}

func isLetter(b byte) bool { return 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' }
