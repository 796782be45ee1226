package smtpd

import "strings"

// commands maps each verb of the state table to its handler. A handler
// reports whether the command succeeded; the state table then decides the
// next state. Handlers never check the session's state themselves.
var commands map[string]func(c *conn, arg string) bool

func init() {
	// Set in init, not in the declaration: help reads the state table,
	// and the table's users read commands.
	commands = map[string]func(c *conn, arg string) bool{
		"HELO":      (*conn).helo,
		"EHLO":      (*conn).ehlo,
		"LHLO":      (*conn).lhlo,
		"STARTTLS":  (*conn).starttls,
		"AUTH":      (*conn).auth,
		"BDAT":      (*conn).bdat,
		"BDAT LAST": (*conn).bdat,
		"MAIL":      (*conn).mail,
		"RCPT":      (*conn).rcpt,
		"DATA":      (*conn).data,
		"RSET":      (*conn).rset,
		"NOOP":      (*conn).noop,
		"QUIT":      (*conn).quit,
		"VRFY":      (*conn).vrfy,
		"EXPN":      (*conn).expn,
		"HELP":      (*conn).help,
	}
}

// rset aborts the transaction (RFC 5321 4.1.1.5): sender, recipients and
// data are discarded and the reply MUST be 250. It is allowed at any time
// and MUST NOT close the connection. What was said before the transaction
// stays: the HELO name, TLS and the authenticated identity.
func (c *conn) rset(arg string) bool {
	if arg != "" {
		c.reply(replyNoArgument) // RFC 5321 4.3.2
		return false
	}
	c.env = nil
	c.reply(replyOK)
	return true
}

// noop does nothing but answer 250 (RFC 5321 4.1.1.9), at any time; the
// RFC says servers SHOULD ignore an argument, so it is not checked. Clients
// use it to keep a connection alive or to test it, which is also why it
// ends a pipelined group (state.go): its reply is the one they wait for.
func (c *conn) noop(string) bool {
	c.reply(replyOK)
	return true
}

// quit says goodbye and ends the session (RFC 5321 4.1.1.10): the server
// MUST answer 221 and then close, and a transaction in progress is aborted,
// never delivered. QUIT is valid at any time, even after a refused
// greeting (3.1). Its syntax has no argument, hence 501 for one.
func (c *conn) quit(arg string) bool {
	if arg != "" {
		c.reply(replyNoArgument)
		return false
	}
	c.env = nil
	c.replyAndClose(&Reply{Code: 221, Enhanced: "2.0.0", Text: c.srv.hostname() + " Service closing transmission channel"})
	return true
}

var (
	replyNeedArgument = &Reply{Code: 501, Enhanced: "5.5.4", Text: "Syntax error: argument required"}
	replyNoSuchList   = &Reply{Code: 550, Enhanced: "5.1.1", Text: "Mailing list not found"}
	replyNoHelpTopic  = &Reply{Code: 504, Enhanced: "5.5.4", Text: "HELP topic not known"}
)

// vrfy asks whether a mailbox exists (RFC 5321 3.5.1, 4.1.1.6). 250 would
// claim the address was verified, which a server MUST NOT do unless it
// was (3.5.3), and disclosing users is a site's choice (7.3). So the answer
// is 252, "cannot verify, but will accept and try", when Verify is nil or
// returns nil; Verify can refuse with a reply of its own (550, 551, ...).
// VRFY touches no buffer (4.1.1.6): the transaction, if any, goes on.
func (c *conn) vrfy(arg string) bool {
	if arg == "" {
		c.reply(replyNeedArgument)
		return false
	}
	if c.srv.Verify == nil {
		c.reply(replyCannotVerify)
		return true
	}
	err := c.call("Verify", func() error { return c.srv.Verify(c.ctx, c.newEnvelope(), arg) })
	if err != nil {
		c.reply(c.replyFor("Verify", err))
		return true
	}
	c.reply(replyCannotVerify)
	return true
}

// expn asks for a mailing list's members (RFC 5321 3.5, 4.1.1.7): one
// reply line per member, 250 only for a list that was really expanded
// (3.5.3). Without Server.Expand it is not implemented (502, 4.2.4), as
// sites that keep their lists private answer (7.3). Like VRFY it touches
// no buffer and may come at any time.
func (c *conn) expn(arg string) bool {
	if c.srv.Expand == nil {
		c.reply(replyNotImplemented)
		return false
	}
	if arg == "" {
		c.reply(replyNeedArgument)
		return false
	}
	var members []string
	err := c.call("Expand", func() (err error) {
		members, err = c.srv.Expand(c.ctx, c.newEnvelope(), arg)
		return err
	})
	switch {
	case err != nil:
		c.reply(c.replyFor("Expand", err))
	case len(members) == 0:
		c.reply(replyNoSuchList)
	default:
		c.replyLines(250, "2.1.5", c.esmtp, members)
	}
	return true
}

// help lists the commands (RFC 5321 4.1.1.8), or, given a command, says what
// it does and where RFC 5321 defines it, from the state table. The RFC
// asks servers to support HELP without argument (SHOULD) and allows one
// (MAY); 214 is its reply (4.2.3) and an unknown topic gets 504 (a
// parameter not implemented). It touches no buffer and may come at any
// time.
func (c *conn) help(arg string) bool {
	if arg == "" {
		c.replyLines(214, "2.0.0", c.esmtp, []string{
			"Commands: " + helpVerbs(),
			"For more: HELP <command>; the protocol is RFC 5321",
		})
		return true
	}
	verb := strings.ToUpper(arg)
	var lines []string
	for _, r := range stateTable {
		if r.verb == verb {
			lines = append(lines, verb+": "+r.note+" (RFC 5321 "+r.rfc+")")
		}
	}
	if lines == nil {
		c.reply(replyNoHelpTopic)
		return true
	}
	c.replyLines(214, "2.0.0", c.esmtp, lines)
	return true
}

// helpVerbs lists the verbs of the state table.
func helpVerbs() string {
	var verbs []string
	for _, r := range stateTable {
		if len(verbs) == 0 || verbs[len(verbs)-1] != r.verb && r.verb != "BDAT LAST" {
			verbs = append(verbs, r.verb)
		}
	}
	return strings.Join(verbs, " ")
}
