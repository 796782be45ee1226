package smtpd

// MAIL and RCPT: the envelope of a mail transaction (RFC 5321 3.3, 4.1.1.2,
// 4.1.1.3).

var (
	replySenderOK    = &Reply{Code: 250, Enhanced: "2.1.0", Text: "Sender OK"}
	replyRecipientOK = &Reply{Code: 250, Enhanced: "2.1.5", Text: "Recipient OK"}
	// RFC 5321 4.1.1.11: a parameter the server does not know is 555.
	replyUnknownParam = &Reply{Code: 555, Enhanced: "5.5.4", Text: "Unsupported parameter"}
	replySizeTooBig   = &Reply{Code: 552, Enhanced: "5.3.4", Text: "Declared message size exceeds the maximum message size"}
)

// mail starts a transaction: MAIL FROM:<reverse-path> [parameters].
//
// RFC 5321 4.1.1.2: MAIL clears the buffers and records the reverse-path,
// which may be null ("<>") for notifications that must not be answered
// (4.5.5); the state table admits it only outside a transaction
// (4.1.4, 503 otherwise). Its parameters belong to the extensions offered
// (4.1.1.11: 555 for one the server does not know). A refusal starts no
// transaction, so the client may try MAIL again; 250 means the server
// holds the reverse-path and waits for recipients (3.3).
func (c *conn) mail(arg string) bool {
	path, params, err := parseMailArg(arg, c.pathLimits())
	if err != nil {
		c.reply(err.(*Reply))
		return false
	}
	// The table's guards have refused a well-formed MAIL before STARTTLS
	// (RequireTLS) or AUTH (RequireAuth) with 530.
	env := c.newEnvelope()
	env.ReversePath, env.MailParams = path, params
	if r := c.mailParams(env, params); r != nil {
		c.reply(r)
		return false
	}
	if c.srv.CheckSender != nil {
		if err := c.call("CheckSender", func() error { return c.srv.CheckSender(c.ctx, env) }); err != nil {
			c.reply(c.replyFor("CheckSender", err))
			return false
		}
	}
	c.env = env
	c.reply(replySenderOK)
	return true
}

// mailParses reports whether MAIL's argument is well formed, for the
// guards that refuse MAIL only after its syntax (guardRequireTLS).
func (c *conn) mailParses(arg string) bool {
	_, _, err := parseMailArg(arg, c.pathLimits())
	return err == nil
}

// rcpt adds a recipient: RCPT TO:<forward-path> [parameters].
//
// RFC 5321 4.1.1.3: each RCPT appends one forward-path and changes nothing
// else, so a refused recipient leaves those accepted before it in place
// and the client goes on with the rest (3.3: a reply per recipient).
// <Postmaster> must be accepted (4.5.1). Past MaxRecipients (at least 100
// must be buffered, 4.5.3.1.8) the reply is 452, a temporary one, so that
// the client sends the rest in another transaction (4.5.3.1.10).
func (c *conn) rcpt(arg string) bool {
	env := c.env
	lim := c.pathLimits()
	lim.utf8 = env.SMTPUTF8 // RFC 6531 3.4: declared at MAIL
	path, params, err := parseRcptArg(arg, lim)
	if err != nil {
		c.reply(err.(*Reply))
		return false
	}
	if limit := limitOf(c.srv.MaxRecipients, DefaultMaxRecipients); limit > 0 && len(env.Recipients) >= limit {
		c.reply(replyTooManyRecipients) // RFC 5321 4.5.3.1.10
		return false
	}
	rcpt := Recipient{ForwardPath: path, Params: params}
	if r := c.rcptParams(&rcpt, params); r != nil {
		c.reply(r)
		return false
	}
	if c.srv.CheckRecipient != nil && !c.isPostmaster(path) {
		if err := c.call("CheckRecipient", func() error { return c.srv.CheckRecipient(c.ctx, env, rcpt) }); err != nil {
			c.reply(c.replyFor("CheckRecipient", err))
			return false
		}
	}
	env.Recipients = append(env.Recipients, rcpt)
	c.reply(replyRecipientOK)
	return true
}

// isPostmaster reports whether p is a postmaster address this server must
// accept (RFC 5321 4.5.1): <Postmaster>, or postmaster at the server's own
// name. Postmaster at any other domain goes through CheckRecipient, which
// knows which domains are local; accepting it unchecked would relay.
func (c *conn) isPostmaster(p Path) bool {
	return equalFoldASCII(p.LocalPart, "postmaster") &&
		(p.Domain == "" || equalFoldASCII(p.Domain, c.srv.hostname()))
}

// newEnvelope returns an envelope with what the server knows of the
// session, for a new transaction.
func (c *conn) newEnvelope() *Envelope {
	return &Envelope{
		ID:           c.srv.newID(),
		RemoteAddr:   c.remote,
		LocalAddr:    c.local,
		Hello:        c.helloName,
		ESMTP:        c.esmtp,
		TLS:          c.tls,
		AuthIdentity: c.authIdentity,
	}
}

// pathLimits returns the limits of RFC 5321 4.5.3.1.1 to 4.5.3.1.3 in
// force: the server's fields, or the RFC's minimums by default.
func (c *conn) pathLimits() pathLimits {
	srv := c.srv
	return pathLimits{
		localPart: limitOf(srv.MaxLocalPart, DefaultMaxLocalPart),
		domain:    limitOf(srv.MaxDomain, DefaultMaxDomain),
		path:      limitOf(srv.MaxPath, DefaultMaxPath),
	}
}
