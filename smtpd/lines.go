package smtpd

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"math"
	"net"
	"sync"
	"time"
)

// The session's input and output: command lines read under the line rules
// (RFC 5321 2.3.8, 4.5.3.1.4) and their deadlines (4.5.3.2), replies
// queued and sent together (RFC 2920 3.2), and the pooled buffers that an
// idle session gives back.

// Buffers are shared by all sessions through pools: a session takes them
// only while it reads or writes (see conn.br and conn.bw), and a server that
// takes one message per connection would otherwise allocate them for each.
var (
	readerPool sync.Pool
	writerPool sync.Pool
)

const bufferSize = 4096

func getReader(r io.Reader) *bufio.Reader {
	if br, ok := readerPool.Get().(*bufio.Reader); ok {
		br.Reset(r)
		return br
	}
	return bufio.NewReaderSize(r, bufferSize)
}

// awaitInput waits for a command line to begin. While nothing is buffered,
// the session waits without a read buffer: br goes back to its pool, the
// wait reads into the session's small wake array, and a pooled br takes
// over what arrived. Input still buffered (pipelined commands, RFC 2920)
// keeps br, since a bufio.Reader cannot give its buffered octets away.
// A command, or a pipelined group, that fits wake costs no more reads than
// before; a longer one costs one. Whoever reads the message (dataReader,
// chunkReader) reads c.br as it is then, never one kept from before a
// command wait.
func (c *conn) awaitInput() error {
	c.pipelined = c.br != nil && c.br.Buffered() > 0
	if c.br != nil {
		if c.pipelined {
			return nil
		}
		c.releaseReader()
	}
	n, err := c.in.Read(c.wake[:])
	if n == 0 {
		if err == nil {
			err = io.ErrNoProgress // a WrapConn that breaks io.Reader's contract
		}
		return err
	}
	// An error that came with octets comes again at the next read.
	c.in.pending = c.wake[:n]
	c.br = getReader(&c.in)
	return nil
}

func (c *conn) releaseReader() {
	c.br.Reset(nil)
	readerPool.Put(c.br)
	c.br = nil
}

// writer returns the buffered writer for replies, taken from its pool when
// no reply is queued; flush gives it back.
func (c *conn) writer() *bufio.Writer {
	if c.bw == nil {
		if bw, ok := writerPool.Get().(*bufio.Writer); ok {
			bw.Reset(&c.wr)
			c.bw = bw
		} else {
			c.bw = bufio.NewWriterSize(&c.wr, bufferSize)
		}
	}
	return c.bw
}

// write queues b, part of a reply; see reply.
func (c *conn) write(b []byte) { c.writer().Write(b) }

// waitCommand starts the wait for a command line: the whole line must
// arrive within CommandTimeout. idle says whether Shutdown may end the
// session while it waits: not between the chunks of a message, where the
// message's deadline (MessageTimeout) holds as well.
func (c *conn) waitCommand(idle bool) {
	timeout := limitOf(c.srv.CommandTimeout, DefaultCommandTimeout)
	if c.state == stateRefused {
		timeout = min(timeout, refusedTimeout)
		if timeout == 0 {
			timeout = refusedTimeout // CommandTimeout says no limit; a refused client has one
		}
	}
	deadline := deadlineIn(timeout)
	if !idle {
		deadline = earlier(deadline, c.msgDeadline)
	}
	c.in.setDeadline(deadline, 0, idle)
}

// readCommandLine reads a command line, after waitCommand; see readLine.
func (c *conn) readCommandLine() (line []byte, bad *Reply, err error) {
	c.raw = c.raw[:0]
	if err := c.awaitInput(); err != nil {
		return nil, nil, err
	}
	// AUTH with an initial response may be longer than other commands
	// (RFC 4954 4).
	limit := limitOf(c.srv.MaxCommandLength, DefaultMaxCommandLength)
	if limit == 0 {
		limit = math.MaxInt // as configured: no limit
	}
	line, bad, err = c.readLine(max(limit, maxAuthLine))
	if bad == nil && err == nil && len(line)+2 > limit &&
		!(len(line) > 5 && equalFoldASCII(string(line[:5]), "AUTH ")) {
		bad = replyCommandTooLong
	}
	return line, bad, err
}

// readLine reads one line of at most limit octets with its CRLF. A line
// that breaks the rules is read to its CRLF and answered with bad, so that
// the session stays in step with the client: RFC 5321 2.3.8 allows only
// CRLF as a line end, so a bare CR or LF does not end the line, it makes it
// invalid; and 4.5.3.1.4 limits the line's length. The line is valid until
// the next read.
func (c *conn) readLine(limit int) (line []byte, bad *Reply, err error) {
	n := 0
	prevCR := false     // the previous piece of a long line ended in CR
	c.long = c.long[:0] // a line longer than the read buffer, within limit
	c.raw = c.raw[:0]
	for {
		piece, err := c.br.ReadSlice('\n')
		if c.tracer != nil {
			c.raw = append(c.raw, piece...)
		}
		if err != nil && err != bufio.ErrBufferFull {
			return nil, nil, err
		}
		n += len(piece)
		if n > limit {
			bad = orReply(bad, replyCommandTooLong)
		}
		if bad == nil && (err == bufio.ErrBufferFull || len(c.long) > 0) {
			c.long = append(c.long, piece...)
		}
		if err == bufio.ErrBufferFull {
			prevCR = piece[len(piece)-1] == '\r'
			continue
		}
		if !(len(piece) >= 2 && piece[len(piece)-2] == '\r' || len(piece) == 1 && prevCR) {
			// A bare LF: not the end of the line.
			bad = orReply(bad, replyCommandBareEnd)
			prevCR = false
			continue
		}
		if bad != nil {
			return nil, bad, nil
		}
		line = piece
		if len(c.long) > 0 {
			line = c.long
		}
		line = line[:len(line)-2]
		if bytes.IndexByte(line, '\r') >= 0 {
			return nil, replyCommandBareEnd, nil
		}
		return line, nil, nil
	}
}

// deadlineIn returns the time d from now, or the zero time, no deadline, when d
// is zero: limitOf turns a negative timeout ("no limit") into zero.
func deadlineIn(d time.Duration) time.Time {
	if d == 0 {
		return time.Time{}
	}
	return time.Now().Add(d)
}

// earlier returns the earlier of two deadlines, the zero time meaning none.
func earlier(a, b time.Time) time.Time {
	if a.IsZero() || !b.IsZero() && b.Before(a) {
		return b
	}
	return a
}

// flush writes the queued replies, within CommandTimeout.
func (c *conn) flush() error {
	return c.flushWithin(limitOf(c.srv.CommandTimeout, DefaultCommandTimeout))
}

// free returns the session's buffers to their pools.
func (c *conn) free() {
	if c.br != nil {
		c.releaseReader()
	}
	if c.bw != nil {
		c.bw.Reset(nil)
		writerPool.Put(c.bw)
		c.bw = nil
	}
}

// connReader is the connection as the session's bufio.Reader sees it. Each
// time the reader needs bytes from the network it first sends the queued
// replies (so pipelined replies leave together and a client is never kept
// waiting), applies the read deadline, and, while waiting for a command,
// marks the session idle for Shutdown.
type connReader struct {
	c        *conn
	deadline time.Time     // the whole command line or message must arrive by then
	perRead  time.Duration // and each read within this, when not zero
	command  bool          // reading a command: the session is idle
	// pending is input read already, into conn.wake, to be returned
	// before anything else. The first Read of a fresh br takes it all,
	// since br's buffer is larger than wake.
	pending []byte
}

// setDeadline starts a read phase: everything by deadline, and each network
// read within perRead when it is not zero.
func (r *connReader) setDeadline(deadline time.Time, perRead time.Duration, command bool) {
	r.deadline, r.perRead, r.command = deadline, perRead, command
}

func (r *connReader) Read(p []byte) (int, error) {
	if len(r.pending) > 0 {
		// Not a wait for the network: the replies stay queued.
		n := copy(p, r.pending)
		r.pending = r.pending[n:]
		return n, nil
	}
	c := r.c
	if err := c.flush(); err != nil {
		return 0, err
	}
	now := time.Now()
	limit := r.deadline
	if r.perRead > 0 {
		limit = earlier(limit, now.Add(r.perRead))
	}
	c.setDeadline(limit, now)
	return r.readBy(p, limit)
}

// readBy reads from the network once, or again after a read timed out
// before limit (see setDeadline).
func (r *connReader) readBy(p []byte, limit time.Time) (int, error) {
	for {
		n, err := r.read(p)
		if n > 0 || !r.c.timedOutEarly(err, limit) {
			return n, err
		}
	}
}

// read is one read from the network. While the session waits for a
// command, Shutdown may end it.
func (r *connReader) read(p []byte) (int, error) {
	c := r.c
	if !r.command {
		return c.stream.Read(p)
	}
	if !c.setIdle(true) {
		return 0, errShutdown
	}
	n, err := c.stream.Read(p)
	if !c.setIdle(false) {
		// Whatever came is dropped: the client gets 421 for it
		// (RFC 5321 3.8).
		return 0, errShutdown
	}
	return n, err
}

// connWriter is the connection as the session's bufio.Writer sees it: the
// stream, where a write that timed out early (see setDeadline) goes on.
type connWriter struct {
	c *conn
}

func (w *connWriter) Write(p []byte) (int, error) {
	c := w.c
	n, err := c.stream.Write(p)
	for n < len(p) && c.timedOutEarly(err, c.writeBy) {
		var more int
		more, err = c.stream.Write(p[n:])
		n += more
	}
	return n, err
}

// setDeadline makes the stream's deadline right for a read or a write that
// must end by limit (the zero time: no limit); now is the time.
//
// Exactly limit would be a runtime timer moved at every command and every
// reply, and a wake-up of the network poller each time the moved timer
// becomes the process's earliest. Over a plain TCP connection
// (lazyDeadline) the deadline stays where it is instead, as long as it is
// not later than limit, so that nothing waits longer than allowed, and at
// least half the time to limit is left on it, so that few reads or writes
// outlive it. One that does, and times out before its limit, goes on with
// the deadline moved to the limit (timedOutEarly). Every timeout thus
// ends the session when an exact deadline would have, and a busy session
// moves its deadline a few times per timeout period rather than several
// times per message.
//
// When a lazy deadline moves, it moves no further ahead than the shorter
// of CommandTimeout and DataTimeout, so that a message's data (by default
// DataTimeout, shorter) does not move it again, earlier, after the
// commands before it: a timer moved before every other timer of the
// process wakes the runtime's network poller, a system call and a thread
// switch, once per connection when connections carry one message each.
//
// Over TLS the deadline is exact: crypto/tls cannot go on with a Write
// that timed out.
func (c *conn) setDeadline(limit, now time.Time) {
	if c.armed.Equal(limit) || c.lazyDeadline && keepDeadline(c.armed, limit, now) {
		return
	}
	if short := c.shortTimeout(); c.lazyDeadline && !limit.IsZero() && short > 0 {
		limit = earlier(limit, now.Add(short))
	}
	c.stream.SetDeadline(limit)
	c.armed = limit
}

// shortTimeout is the shorter of CommandTimeout and DataTimeout, 0 when
// neither limits; see setDeadline.
func (c *conn) shortTimeout() time.Duration {
	command := limitOf(c.srv.CommandTimeout, DefaultCommandTimeout)
	data := limitOf(c.srv.DataTimeout, DefaultDataTimeout)
	if command == 0 || data > 0 && data < command {
		return data
	}
	return command
}

// keepDeadline reports whether the lazy deadline armed may stay for a read
// or a write that must end by limit; see setDeadline.
func keepDeadline(armed, limit, now time.Time) bool {
	if armed.IsZero() || limit.IsZero() {
		return false // none yet, or no limit: only the exact one will do
	}
	return !armed.After(limit) && armed.Sub(now) >= limit.Sub(now)/2
}

// timedOutEarly reports whether err is the timeout of a lazy deadline
// before limit, the read's or the write's own; if so, it moves the
// deadline to limit for the read or write to go on.
func (c *conn) timedOutEarly(err error, limit time.Time) bool {
	var ne net.Error
	if !c.lazyDeadline || !errors.As(err, &ne) || !ne.Timeout() {
		return false
	}
	if !limit.IsZero() && !time.Now().Before(limit) {
		return false // the limit itself
	}
	c.stream.SetDeadline(limit)
	c.armed = limit
	return true
}

// flushWithin writes the queued replies within timeout (0: no limit) and,
// once they are all written, returns bw to its pool: a session waiting for
// the client holds no write buffer.
func (c *conn) flushWithin(timeout time.Duration) error {
	if c.bw == nil {
		return nil
	}
	if c.bw.Buffered() > 0 {
		now := time.Now() // one clock read for the deadline and setDeadline
		c.writeBy = time.Time{}
		if timeout > 0 {
			c.writeBy = now.Add(timeout)
		}
		c.setDeadline(c.writeBy, now)
		if err := c.bw.Flush(); err != nil {
			return err // the session ends; free returns bw
		}
	}
	c.bw.Reset(nil)
	writerPool.Put(c.bw)
	c.bw = nil
	return nil
}
