package smtpd

import (
	"context"
	"io"
	"log/slog"
	"time"
)

// Delivery, for DATA and BDAT alike: the Handler's call with its context
// and DeliveryTimeout, and the replies to a delivered message (one, or one
// per recipient in LMTP, RFC 2033 4.2).

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
