package smtpd

import (
	"strconv"
	"strings"
)

// HELO, EHLO (RFC 5321 4.1.1.1) and LMTP's LHLO (RFC 2033 4.1): the client
// names itself and, with EHLO or LHLO, learns which extensions it may use.
// Where each may come is the state table's business (state.go); these
// handlers decide only whether the name is acceptable and what to answer.

// replyWrongHello answers HELO or EHLO on an LMTP server, which knows only
// LHLO (RFC 2033 4.1): a client that took it for an SMTP server would not
// expect a reply per recipient after DATA (RFC 2033 4.2), so it is stopped
// at the greeting and told why.
var replyWrongHello = &Reply{Code: 500, Enhanced: "5.5.1", Text: "Command unrecognized: this server speaks LMTP, greet with LHLO"}

// helo is RFC 821's greeting, kept for old clients: RFC 5321 2.2.1 has
// servers support it as a fallback, and 3.2 forbids the EHLO-style reply
// to it, so the client gets one line and is offered no extension.
func (c *conn) helo(arg string) bool { return c.hello(arg, false, false) }

// ehlo opens an extended session (RFC 5321 2.2.1, 4.1.1.1): the reply
// lists the extensions offered.
func (c *conn) ehlo(arg string) bool { return c.hello(arg, true, false) }

// lhlo is LMTP's EHLO (RFC 2033 4.1), the only greeting an LMTP server
// takes.
func (c *conn) lhlo(arg string) bool { return c.hello(arg, true, true) }

// hello identifies the client. Its argument must be a domain or an address
// literal (RFC 5321 4.1.2 requires 501 otherwise). A HELO or EHLO in the
// middle of a transaction resets it as RSET does (4.1.4). An LMTP server
// knows only LHLO, an SMTP server only HELO and EHLO (RFC 2033 4.1).
func (c *conn) hello(arg string, esmtp, lhlo bool) bool {
	if lhlo != c.srv.LMTP {
		r := replyUnrecognized
		if c.srv.LMTP {
			r = replyWrongHello
		}
		c.reply(r)
		return false
	}
	name, err := parseHelloArg(arg)
	if err != nil {
		c.reply(err.(*Reply))
		return false
	}
	// RFC 5321 4.1.4 lets a server check the name against the client's
	// address but forbids refusing mail because they differ; whether to
	// refuse the greeting is the embedder's policy, not this package's.
	if c.srv.CheckHello != nil {
		env := c.newEnvelope()
		env.Hello, env.ESMTP = name, esmtp
		if err := c.call("CheckHello", func() error { return c.srv.CheckHello(c.ctx, env) }); err != nil {
			c.reply(c.replyFor("CheckHello", err))
			return false
		}
	}
	// RFC 5321 4.1.4: a greeting later in the session "MUST clear all
	// buffers and reset the state exactly as if a RSET command had been
	// issued". A refused greeting above changed nothing.
	c.env = nil
	c.helloName, c.esmtp = name, esmtp
	if !esmtp {
		c.reply(&Reply{Code: 250, Text: c.srv.hostname()})
		return true
	}
	c.replyLines(250, "", false, c.extensions())
	return true
}

// extensions returns the EHLO reply's lines: the server's name, then one
// line per service extension (RFC 5321 4.1.1.1) offered now. A client may
// use only what is listed here (RFC 5321 4.1.1.3: no parameter of an
// extension not offered), so the list changes with the session: STARTTLS
// goes once TLS is on and AUTH once the client has authenticated.
func (c *conn) extensions() []string {
	srv := c.srv
	size := "SIZE"
	if limit := limitOf(srv.MaxMessageBytes, DefaultMaxMessageBytes); limit > 0 {
		size += " " + strconv.FormatInt(limit, 10) // RFC 1870 4
	}
	lines := []string{
		srv.hostname(),
		"PIPELINING",          // RFC 2920
		"8BITMIME",            // RFC 6152
		size,                  // RFC 1870
		"ENHANCEDSTATUSCODES", // RFC 2034
		"CHUNKING",            // RFC 3030
		"BINARYMIME",          // RFC 3030
		"SMTPUTF8",            // RFC 6531
		"DSN",                 // RFC 3461
	}
	if srv.TLSConfig != nil && c.tls == nil {
		lines = append(lines, "STARTTLS") // RFC 3207; not once TLS is on (4.2)
	}
	if names := srv.authNames(); names != "" && c.authOffered() && c.authIdentity == "" {
		lines = append(lines, "AUTH "+names) // RFC 4954 3
	}
	return lines
}

// parseHelloArg parses the argument of HELO or EHLO: a Domain or an
// address-literal (RFC 5321 4.1.1.1), returned as sent. Trailing spaces are
// ignored, as after a path; anything else after the domain is an error.
func parseHelloArg(arg string) (string, error) {
	d := strings.TrimRight(arg, " ")
	// RFC 6531 3.7.1: EHLO comes before SMTPUTF8 can be negotiated, so the
	// domain is ASCII (A-labels). RFC 5321 4.5.3.1.2: at most 255 octets.
	if d == "" || len(d) > 255 || hasNonASCII(d) || !(isDomain(d) || isAddressLiteral(d)) {
		return "", replyHelloSyntax
	}
	return d, nil
}
