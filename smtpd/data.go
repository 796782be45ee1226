package smtpd

import (
	"context"
	"io"
	"net"
	"net/netip"
	"time"
)

// DATA (RFC 5321 4.1.1.4): the message, its Received field, its delivery.

// data receives and delivers the message. The transaction ends whatever
// happens; the reply comes only after the handler returned (RFC 5321
// 4.2.5: 250 means the server has taken responsibility for the message).
func (c *conn) data(arg string) bool {
	if arg != "" {
		c.reply(replyNoArgument) // RFC 5321 4.3.2
		return false
	}
	srv := c.srv
	env := c.env
	c.reply(replyStartData)
	// Sent now, not when the handler first reads: a handler may do work
	// (open a file, a database transaction) before it reads.
	if err := c.flush(); err != nil {
		c.state = stateDone
		return false
	}
	now := time.Now()
	c.in.setDeadline(now.Add(orDefault(srv.MessageTimeout, defaultMessageTimeout)),
		orDefault(srv.DataTimeout, defaultDataTimeout), false)
	c.dr.reset(c.br, orDefault(srv.MaxMessageBytes, defaultMaxMessageBytes),
		orDefault(srv.MaxLineLength, defaultMaxLineLength), srv.AcceptBareLineEnds)

	ctx, cancel := context.WithCancel(c.ctx)
	c.msg = messageReader{data: &c.dr, cancel: cancel,
		timeout: orDefault(srv.DeliveryTimeout, defaultDeliveryTimeout)}
	if !srv.DisableReceived {
		c.msg.prefix = c.appendReceived(c.msg.buf[:0], env, now)
	}
	h := srv.Handler
	if h == nil {
		h = discard
	}
	err := c.call("Handler", func() error { return h.ServeSMTP(ctx, env, &c.msg) })
	c.msg.stop()
	c.env = nil

	// Whatever the handler read, find the end of the data so the next
	// command is read as a command.
	if derr := c.dr.drain(); derr != nil {
		// No reply: the message never fully arrived.
		c.readFailed(derr)
		c.state = stateDone
		return false
	}
	var reply *Reply
	switch v := c.dr.violation(); {
	case v != nil:
		reply = v.(*Reply)
	case err != nil:
		reply = c.replyFor("Handler", err)
	default:
		reply = &Reply{Code: 250, Enhanced: "2.0.0", Text: "OK: queued as " + env.ID}
	}
	c.reply(reply)
	c.logInfo("message", "id", env.ID, "from", env.ReversePath.String(),
		"recipients", len(env.Recipients), "size", c.dr.size(), "reply", reply.code())
	return true
}

// messageReader is what the Handler reads: the Received field, then the
// message. When the message's end has been read, DeliveryTimeout starts.
type messageReader struct {
	prefix  []byte
	buf     [512]byte // holds prefix, so that it is not allocated per message
	data    *dataReader
	cancel  context.CancelFunc
	timeout time.Duration
	timer   *time.Timer
}

func (m *messageReader) Read(p []byte) (int, error) {
	if len(m.prefix) > 0 {
		n := copy(p, m.prefix)
		m.prefix = m.prefix[n:]
		return n, nil
	}
	n, err := m.data.Read(p)
	if err == io.EOF && m.timer == nil && m.timeout > 0 {
		m.timer = time.AfterFunc(m.timeout, m.cancel)
	}
	return n, err
}

// stop ends the delivery: its timer and its context.
func (m *messageReader) stop() {
	if m.timer != nil {
		m.timer.Stop()
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
	if ip, ok := addrIP(c.rwc.RemoteAddr()); ok {
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
	b = append(b, c.protocol()...)
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

// protocol is the Received field's "with" value (RFC 3848): SMTP after
// HELO, ESMTP after EHLO.
func (c *conn) protocol() string {
	if c.esmtp {
		return "ESMTP"
	}
	return "SMTP"
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
