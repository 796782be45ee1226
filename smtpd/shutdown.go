package smtpd

import (
	"context"
	"errors"
	"net"
	"sync"
	"time"
)

// Ending sessions from outside: Shutdown lets each session finish and say
// 421 (RFC 5321 3.8) when it next waits for a command; Close says 421 to
// every session at once and closes it.

// errShutdown ends a session that waits for a command while the server
// shuts down; the session answers 421 (readFailed).
var errShutdown = errors.New("smtpd: server shutting down")

// wakeIfIdle is Shutdown's part: a session blocked waiting for a command
// is woken by a read deadline in the past (as miekg/dns does), and then
// answers 421 and ends itself. Shutdown writes nothing to the connection,
// so a client that does not read cannot hold it up.
func (c *conn) wakeIfIdle() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.idle && !c.woken {
		c.woken = true
		c.rwc.SetReadDeadline(aLongTimeAgo)
	}
}

// setCloser sets closer, which Close reads from its own goroutine.
func (c *conn) setCloser(w net.Conn) {
	c.mu.Lock()
	c.closer = w
	c.mu.Unlock()
}

// sayBye writes line, Close's 421, unless the session has said 421
// already or is in a TLS handshake.
func (c *conn) sayBye(line []byte, deadline time.Time) {
	c.byeMu.Lock()
	defer c.byeMu.Unlock()
	c.mu.Lock()
	w := c.closer
	c.mu.Unlock()
	if c.bye || w == nil {
		return
	}
	c.bye = true
	w.SetWriteDeadline(deadline)
	w.Write(line)
}

// aLongTimeAgo is a deadline in the past, which ends a blocked read at once.
var aLongTimeAgo = time.Unix(1, 0)

// setIdle marks the session idle or busy. Going idle fails when the server
// is shutting down; going busy fails when Shutdown woke the session
// meanwhile. Either way the session then says 421 itself.
func (c *conn) setIdle(idle bool) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if idle && c.srv.shuttingDown() {
		return false
	}
	c.idle = idle
	return !c.woken
}

// Shutdown stops the server gracefully, as net/http's Server.Shutdown
// does. It closes the listeners; it ends every session that is waiting for
// a command, which gets "421 4.3.2" (RFC 5321 3.8); and it waits for the
// others, those in the middle of a message, its delivery, an AUTH exchange
// or a TLS handshake, to finish it: each gets 421 when it next waits for a
// command. It returns nil when every session has ended.
//
// When ctx ends first, Shutdown returns ctx's error and leaves the
// sessions still running as they are: a message being delivered may still
// be acknowledged, since its Handler has not been told to stop. To end them,
// call [Server.Close]; a program that stops usually calls Shutdown with a
// deadline, then Close.
//
// Shutdown sends nothing itself: each session writes its own 421, within a
// short deadline, so a client that does not read delays neither Shutdown
// nor the other sessions.
func (srv *Server) Shutdown(ctx context.Context) error {
	srv.inShutdown.Store(true)
	srv.closeListeners()
	// A session that goes idle after this finds inShutdown set (setIdle);
	// one idle now is woken.
	for _, c := range srv.sessions() {
		c.wakeIfIdle()
	}

	// Poll as net/http does: sessions end on their own time.
	wait := time.Millisecond
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		srv.mu.Lock()
		n := srv.active
		srv.mu.Unlock()
		if n == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
			wait = min(2*wait, 100*time.Millisecond)
			timer.Reset(wait)
		}
	}
}

// Close closes the listeners; tells every session still open "421"
// (RFC 5321 3.8), all within 100 milliseconds, except those in a TLS
// handshake, which get nothing; closes every connection; and then cancels
// the contexts the callbacks got, the Handler's among them. After Close no
// session can send a reply: a message whose Handler
// had not returned when Close closed its connection is not acknowledged,
// and the client will send it again later. A Handler that has stored the
// message and returns nil just as Close runs may thus see the message
// again: the server sends 250 only after the Handler returned nil, so a
// message is never acknowledged without being stored, but the 250 may be
// lost. This is the duplicate SMTP accepts rather than a lost message
// (RFC 5321 4.5.3.2.6 and 6.1, RFC 1047). For a graceful stop, use
// Shutdown first.
func (srv *Server) Close() error {
	srv.inShutdown.Store(true)
	err := srv.closeListeners()
	sessions := srv.sessions()
	// Each session still open is told "421" first (RFC 5321 3.8 lets a
	// server send it at any time, even in the middle of a message), so
	// that its client knows to try again later rather than guess. A
	// session in a TLS handshake gets nothing: a line in the clear would
	// only break the handshake. The writes share one short deadline, so a
	// client that does not read holds Close up no longer than that.
	// A write that ignores its deadline (a WrapConn's) is given up on
	// when the deadline passes: closing the connection ends it.
	line := srv.greetingLine(replyShuttingDown)
	deadline := time.Now().Add(closeReplyTimeout)
	var wg sync.WaitGroup
	for _, c := range sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.sayBye(line, deadline)
		}()
	}
	written := make(chan struct{})
	go func() { wg.Wait(); close(written) }()
	timer := time.NewTimer(closeReplyTimeout)
	select {
	case <-written:
	case <-timer.C:
	}
	timer.Stop()
	for _, c := range sessions {
		// The connection before the context, so that a Handler that
		// returns nil when its context ends cannot get a 250 out.
		c.rwc.Close()
		c.cancel()
		c.msg.abort() // a delivery's context is not the session's child
	}
	return err
}

func (srv *Server) shuttingDown() bool { return srv.inShutdown.Load() }

func (srv *Server) closeListeners() error {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	var err error
	for l := range srv.listeners {
		if cerr := (*l).Close(); cerr != nil && err == nil {
			err = cerr
		}
	}
	return err
}

// sessions returns the sessions being served, so that Shutdown and Close
// act on them without holding srv.mu over calls into the connections.
func (srv *Server) sessions() []*conn {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	list := make([]*conn, 0, len(srv.conns))
	for c := range srv.conns {
		list = append(list, c)
	}
	return list
}
