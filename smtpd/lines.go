package smtpd

import (
	"bufio"
	"bytes"
	"io"
	"math"
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
			bw.Reset(c.stream)
			c.bw = bw
		} else {
			c.bw = bufio.NewWriterSize(c.stream, bufferSize)
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
	if c.bw == nil {
		return nil
	}
	return c.flushBy(deadlineIn(limitOf(c.srv.CommandTimeout, DefaultCommandTimeout)))
}

// flushBy writes the queued replies by deadline and, once they are all
// written, returns bw to its pool: a session waiting for the client holds
// no write buffer.
func (c *conn) flushBy(deadline time.Time) error {
	if c.bw == nil {
		return nil
	}
	if c.bw.Buffered() > 0 {
		c.stream.SetWriteDeadline(deadline)
		if err := c.bw.Flush(); err != nil {
			return err // the session ends; free returns bw
		}
	}
	c.bw.Reset(nil)
	writerPool.Put(c.bw)
	c.bw = nil
	return nil
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
	set      time.Time     // the deadline last set on the connection
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
	d := r.deadline
	if r.perRead > 0 {
		d = earlier(d, time.Now().Add(r.perRead))
	}
	if !d.Equal(r.set) {
		c.stream.SetReadDeadline(d)
		r.set = d
	}
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
