package smtpd

import "strconv"

// HELO, EHLO (RFC 5321 4.1.1.1) and LMTP's LHLO (RFC 2033 4.1).

var replyWrongHello = &Reply{Code: 500, Enhanced: "5.5.1", Text: "Command unrecognized: this server speaks LMTP, greet with LHLO"}

func (c *conn) helo(arg string) bool { return c.hello(arg, false, false) }
func (c *conn) ehlo(arg string) bool { return c.hello(arg, true, false) }
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
	if c.srv.CheckHello != nil {
		env := c.newEnvelope()
		env.Hello, env.ESMTP = name, esmtp
		if err := c.call("CheckHello", func() error { return c.srv.CheckHello(c.ctx, env) }); err != nil {
			c.reply(c.replyFor("CheckHello", err))
			return false
		}
	}
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
// line per service extension (RFC 5321 4.1.1.1) offered now.
func (c *conn) extensions() []string {
	srv := c.srv
	size := "SIZE"
	if limit := limitOf(srv.MaxMessageBytes, defaultMaxMessageBytes); limit > 0 {
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
