package smtpd

// DATA (RFC 5321 4.1.1.4): the message after a 354 reply, up to the line
// with a lone dot, read by dataReader; deliver.go hands it on.

// data receives and delivers the message. The transaction ends whatever
// happens; the reply comes only after the handler returned (RFC 5321
// 4.2.5: 250 means the server has taken responsibility for the message).
func (c *conn) data(arg string) bool {
	// The table's guards have refused a DATA with an argument (501) and
	// one after BODY=BINARYMIME (503, RFC 3030 3): arg is empty here.
	srv := c.srv
	c.reply(replyStartData)
	// Sent now, not when the handler first reads: a handler may do work
	// (open a file, a database transaction) before it reads.
	if err := c.flush(); err != nil {
		c.state = stateDone
		return false
	}
	c.startMessage()
	c.dr.reset(c.br, limitOf(srv.MaxMessageBytes, DefaultMaxMessageBytes),
		limitOf(srv.MaxLineLength, DefaultMaxLineLength), srv.AcceptBareLineEnds)
	if c.tracer != nil {
		c.dr.tee = func(b []byte) { c.traceOctets(TraceContent, b) }
	}
	env := c.env
	results := c.deliver(env, &c.dr)
	// Whatever the handler read, find the end of the data so the next
	// command is read as a command.
	if err := c.dr.drain(); err != nil {
		// No reply: the message never fully arrived.
		c.readFailed(err)
		return false
	}
	c.replyDelivered(env, c.dr.violation(), results, c.dr.size())
	return true
}

// startMessage sets the deadlines for reading a message: each read within
// DataTimeout, the whole within MessageTimeout from now.
func (c *conn) startMessage() {
	c.msgDeadline = deadlineIn(limitOf(c.srv.MessageTimeout, DefaultMessageTimeout))
	c.resumeMessage()
}

// resumeMessage sets the deadlines for reading more of the message begun at
// startMessage: after the commands between two BDAT chunks, the whole
// message is still due at the same time, however many chunks it comes in.
func (c *conn) resumeMessage() {
	c.in.setDeadline(c.msgDeadline, limitOf(c.srv.DataTimeout, DefaultDataTimeout), false)
}
