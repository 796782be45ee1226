package smtpd

import "strconv"

// HELO and EHLO (RFC 5321 4.1.1.1).

func (c *conn) helo(arg string) bool { return c.hello(arg, false) }
func (c *conn) ehlo(arg string) bool { return c.hello(arg, true) }

// hello identifies the client. Its argument must be a domain or an address
// literal (RFC 5321 4.1.2 requires 501 otherwise). A HELO or EHLO in the
// middle of a transaction resets it as RSET does (4.1.4).
func (c *conn) hello(arg string, esmtp bool) bool {
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
	c.greeting, c.esmtp = name, esmtp
	if !esmtp {
		c.reply(&Reply{Code: 250, Text: c.srv.hostname()})
		return true
	}
	c.replyLines(250, "", false, c.srv.extensions())
	return true
}

// extensions returns the EHLO reply's lines: the server's name, then one
// line per service extension (RFC 5321 4.1.1.1).
func (srv *Server) extensions() []string {
	size := "SIZE"
	if limit := orDefault(srv.MaxMessageBytes, defaultMaxMessageBytes); limit > 0 {
		size += " " + strconv.FormatInt(limit, 10) // RFC 1870 4
	}
	return []string{
		srv.hostname(),
		"PIPELINING",          // RFC 2920
		"8BITMIME",            // RFC 6152
		size,                  // RFC 1870
		"ENHANCEDSTATUSCODES", // RFC 2034
	}
}
