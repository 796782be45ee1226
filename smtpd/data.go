package smtpd

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"time"
)

// DATA (RFC 5321 4.1.1.4), and what DATA and BDAT share: the Received
// field, the call of the Handler, the replies.

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

// deliver hands the message read from src to the Handler, after the
// Received field, and returns the Handler's results: one per recipient for
// an LMTPHandler on an LMTP server, one for all otherwise. The transaction
// is over: c.env is cleared.
func (c *conn) deliver(env *Envelope, src io.Reader) []error {
	srv := c.srv
	ctx, cancel := context.WithCancel(c.ctx)
	c.msg.c, c.msg.data, c.msg.cancel, c.msg.received = c, src, cancel, false
	c.msg.timeout = limitOf(srv.DeliveryTimeout, DefaultDeliveryTimeout)
	c.msg.prefix = nil
	if !srv.DisableReceived {
		c.msg.prefix = c.appendReceived(c.msg.buf[:0], env, time.Now())
	}
	c.env = nil
	defer c.msg.stop()
	if c.tracer != nil {
		c.trace(TraceEvent{Kind: TraceMessage, Envelope: env})
	}

	h := srv.Handler
	if h == nil {
		h = discard
	}
	if lh, ok := h.(LMTPHandler); ok && srv.LMTP {
		var results []error
		err := c.call("Handler", func() error {
			results = lh.ServeLMTP(ctx, env, &c.msg)
			return nil
		})
		if err != nil || len(results) != len(env.Recipients) {
			if err == nil {
				c.logError("LMTPHandler returned the wrong number of results", "want", len(env.Recipients), "got", len(results))
			}
			return []error{replyInternal}
		}
		return results
	}
	err := c.call("Handler", func() error { return h.ServeSMTP(ctx, env, &c.msg) })
	return []error{err}
}

// replyDelivered sends the replies to a delivered message: one, or in LMTP
// one per recipient, in their order (RFC 2033 4.2). A violation found in the
// message refuses it whatever the handler said.
func (c *conn) replyDelivered(env *Envelope, violation error, results []error, size int64) {
	n := 1
	if c.srv.LMTP {
		n = len(env.Recipients)
	}
	if c.tracer != nil {
		c.trace(TraceEvent{Kind: TraceDelivered, Envelope: env, Size: size, Err: firstError(violation, results)})
	}
	var first *Reply
	for i := 0; i < n; i++ {
		err := results[min(i, len(results)-1)]
		var reply *Reply
		switch {
		case violation != nil:
			reply = violation.(*Reply)
		case err != nil:
			reply = c.replyFor("Handler", err)
		default:
			reply = &Reply{Code: 250, Enhanced: "2.0.0", Text: "OK: queued as " + env.ID}
		}
		c.reply(reply)
		if first == nil {
			first = reply
		}
	}
	if !c.logEnabled(slog.LevelInfo) {
		return
	}
	c.logInfo("message", "id", env.ID, "from", env.ReversePath.String(),
		"recipients", len(env.Recipients), "size", size, "reply", first.code())
}

// messageReader is what the Handler reads: the Received field, then the
// message. When the message's end has been read, DeliveryTimeout starts.
type messageReader struct {
	c        *conn
	prefix   []byte
	buf      [512]byte // holds prefix, so that it is not allocated per message
	data     io.Reader // a dataReader or a chunkReader
	cancel   context.CancelFunc
	timeout  time.Duration
	timer    *time.Timer
	received bool // the message's end was read
}

func (m *messageReader) Read(p []byte) (int, error) {
	if len(m.prefix) > 0 {
		n := copy(p, m.prefix)
		m.prefix = m.prefix[n:]
		return n, nil
	}
	n, err := m.data.Read(p)
	if err == io.EOF && !m.received {
		m.received = true
		if m.timeout > 0 {
			m.timer = time.AfterFunc(m.timeout, m.cancel)
		}
		if m.c.tracer != nil {
			m.c.trace(TraceEvent{Kind: TraceReceived})
		}
	}
	return n, err
}

// stop ends the delivery: its timer and its context. The timer is cleared
// for the session's next message, which starts its own.
func (m *messageReader) stop() {
	if m.timer != nil {
		m.timer.Stop()
		m.timer = nil
	}
	m.cancel()
}

// appendReceived appends the Received trace field (RFC 5321 4.4) for env:
//
//	Received: from <HELO name> ([<client address>])
//		by <server name> with ESMTP id <ID>
//		for <forward-path>; <date>
//
// "for" is given only with one recipient, so that a message does not tell
// each recipient who the others are.
func (c *conn) appendReceived(b []byte, env *Envelope, now time.Time) []byte {
	b = append(b, "Received: from "...)
	b = append(b, env.Hello...)
	if ip, ok := addrIP(c.remote); ok {
		b = append(b, " (["...)
		if ip.Is6() {
			b = append(b, "IPv6:"...)
		}
		b = ip.AppendTo(b)
		b = append(b, "])"...)
	}
	b = append(b, "\r\n\tby "...)
	b = append(b, c.srv.hostname()...)
	b = append(b, " with "...)
	b = append(b, c.protocol(env)...)
	b = append(b, " id "...)
	b = append(b, env.ID...)
	if len(env.Recipients) == 1 && env.Recipients[0].ForwardPath.Domain != "" {
		b = append(b, "\r\n\tfor <"...)
		b = append(b, env.Recipients[0].ForwardPath.String()...)
		b = append(b, '>')
	}
	b = append(b, ";\r\n\t"...)
	b = now.AppendFormat(b, time.RFC1123Z) // RFC 5322 3.3 date-time
	return append(b, "\r\n"...)
}

// protocol is the Received field's "with" value: SMTP after HELO, ESMTP
// after EHLO, LMTP; with "S" after TLS and "A" after AUTH (RFC 3848). A
// transaction that declared SMTPUTF8 is UTF8SMTP or UTF8LMTP, with the
// same suffixes: RFC 6531 3.7.3 registers those names, not "UTF8ESMTP"
// (SMTPUTF8 needs EHLO, so the E would say nothing).
func (c *conn) protocol(env *Envelope) string {
	p := "SMTP"
	switch {
	case c.srv.LMTP:
		p = "LMTP"
	case c.esmtp:
		p = "ESMTP"
	}
	if p == "SMTP" {
		return p // RFC 3848 registers S and A for ESMTP and LMTP only
	}
	if env.SMTPUTF8 {
		p = "UTF8" + strings.TrimPrefix(p, "E")
	}
	if c.tls != nil {
		p += "S"
	}
	if c.authIdentity != "" {
		p += "A"
	}
	return p
}

// addrIP returns the IP address of a TCP or UDP address, IPv4-mapped IPv6
// addresses unmapped.
func addrIP(a net.Addr) (netip.Addr, bool) {
	var ip net.IP
	switch a := a.(type) {
	case *net.TCPAddr:
		ip = a.IP
	case *net.UDPAddr:
		ip = a.IP
	default:
		return netip.Addr{}, false
	}
	addr, ok := netip.AddrFromSlice(ip)
	return addr.Unmap(), ok
}
