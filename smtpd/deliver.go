package smtpd

import (
	"context"
	"io"
	"log/slog"
	"sync"
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
	ctx := c.msg.start(c.ctx)
	c.msg.c, c.msg.data, c.msg.received = c, src, false
	c.msg.timeout = limitOf(srv.DeliveryTimeout, DefaultDeliveryTimeout)
	c.msg.prefix = nil
	if !srv.DisableReceived {
		c.msg.prefix = c.appendReceived(c.msg.buf[:0], env, time.Now())
	}
	c.env = nil
	defer c.msg.stop()
	if c.tracer != nil {
		c.trace(&TraceEvent{Kind: TraceMessage, Envelope: env})
	}

	h := srv.Handler
	if h == nil {
		h = discard
	}
	if lh, ok := h.(LMTPHandler); ok && srv.LMTP {
		return c.deliverLMTP(ctx, lh, env)
	}
	c.result[0] = c.call("Handler", func() error { return h.ServeSMTP(ctx, env, &c.msg) })
	return c.result[:] // not a slice made per message
}

// deliverLMTP hands the message to an LMTPHandler, which returns one
// result per recipient (RFC 2033 4.2).
func (c *conn) deliverLMTP(ctx context.Context, lh LMTPHandler, env *Envelope) []error {
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

// replyDelivered sends the replies to a delivered message: one, or in LMTP
// one per recipient, in their order (RFC 2033 4.2). A violation found in the
// message refuses it whatever the handler said.
func (c *conn) replyDelivered(env *Envelope, violation error, results []error, size int64) {
	n := 1
	if c.srv.LMTP {
		n = len(env.Recipients)
	}
	if c.tracer != nil {
		c.trace(&TraceEvent{Kind: TraceDelivered, Envelope: env, Size: size, Err: firstError(violation, results)})
	}
	var first *Reply
	for i := 0; i < n; i++ {
		err := results[min(i, len(results)-1)]
		reply, id := replyQueued, env.ID
		switch {
		case violation != nil:
			reply, id = violation.(*Reply), ""
		case err != nil:
			reply, id = c.replyFor("Handler", err), ""
		}
		c.replyWith(reply, id)
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
// message. It also keeps the delivery's context: cancelled at the session's
// end (Server.Close) and DeliveryTimeout after the message's end.
//
// A context registered with the session's and a timer of its own, made
// for each message (a context.WithCancel of a cancellable parent, a
// time.AfterFunc and its Stop), were 3% of the server's CPU with 1 KiB
// messages. So the delivery's context has no cancellable parent: the
// session's end reaches it through abort. And one timer serves all the
// session's messages, reset for each; a firing meant for an earlier
// message, too late to be stopped, finds the current one not due and does
// nothing.
type messageReader struct {
	c        *conn
	received bool // the message's end was read
	prefix   []byte
	buf      [512]byte // holds prefix, so that it is not allocated per message
	data     io.Reader // a dataReader or a chunkReader
	timeout  time.Duration
	parent   context.Context // the session's context without its cancellation
	timer    *time.Timer     // calls expire, DeliveryTimeout after a message's end

	// mu guards cancel and due, which the timer's goroutine and
	// Server.Close's use.
	mu     sync.Mutex
	cancel context.CancelFunc // the delivery's; nil between deliveries
	due    time.Time          // when DeliveryTimeout ends the delivery; zero before the message's end
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
		m.startTimeout()
		if m.c.tracer != nil {
			m.c.trace(&TraceEvent{Kind: TraceReceived})
		}
	}
	return n, err
}

// startTimeout starts DeliveryTimeout at the message's end.
func (m *messageReader) startTimeout() {
	if m.timeout <= 0 {
		return
	}
	m.mu.Lock()
	m.due = time.Now().Add(m.timeout)
	m.mu.Unlock()
	if m.timer == nil {
		m.timer = time.AfterFunc(m.timeout, m.expire)
	} else {
		m.timer.Reset(m.timeout)
	}
}

// stop ends the delivery: its timer and its context.
func (m *messageReader) stop() {
	if !m.due.IsZero() {
		m.timer.Stop()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.cancel()
	m.cancel, m.due = nil, time.Time{}
}

// start returns the context of a new delivery in the session whose
// context is session.
func (m *messageReader) start(session context.Context) context.Context {
	if m.parent == nil {
		m.parent = context.WithoutCancel(session) // its values, not its end
	}
	ctx, cancel := context.WithCancel(m.parent)
	m.mu.Lock()
	m.cancel = cancel
	m.mu.Unlock()
	if session.Err() != nil {
		// Server.Close cancels the session, then aborts the delivery
		// under way: this one started in between.
		cancel()
	}
	return ctx
}

// expire is the timer's: it cancels the delivery whose DeliveryTimeout has
// ended.
func (m *messageReader) expire() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cancel != nil && !m.due.IsZero() && !time.Now().Before(m.due) {
		m.cancel()
	}
}

// abort cancels the delivery under way, if any: the session has ended.
func (m *messageReader) abort() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cancel != nil {
		m.cancel()
	}
}

// replyQueued is the reply to a message the Handler took, followed by the
// message's ID (replyDelivered).
var replyQueued = &Reply{Code: 250, Enhanced: "2.0.0", Text: "OK: queued as"}
