package smtpd

import (
	"errors"
	"io"
	"strconv"
	"strings"
)

// BDAT (CHUNKING, RFC 3030 2): the message in chunks of announced size.
//
// The Handler streams the whole message, as with DATA, without a goroutine:
// it is called at the first chunk, and when it has read a chunk that is not
// the last, its reader answers 250 for that chunk and reads the next
// commands itself, through dispatch and the state table, until the next
// BDAT (or a command that ends the transaction: RSET, HELO, EHLO, QUIT).

var replyBadChunk = &Reply{Code: 501, Enhanced: "5.5.4", Text: "Syntax error in BDAT; the chunk's end is unknown, closing connection"}

// errAborted is what the Handler reads when a command ended the
// transaction between two chunks (that command sent its own reply), or
// the session ended there.
var errAborted = errors.New("smtpd: transaction aborted between BDAT chunks")

// chunkReader reads the octets of a message sent in BDAT chunks, as they
// are: no dot-stuffing, no line rules (RFC 3030 2).
type chunkReader struct {
	c     *conn
	left  int64 // octets of the current chunk not read yet
	last  bool  // the current chunk is the last
	next  bool  // a BDAT command just announced the next chunk
	size  int64 // octets of the message so far
	max   int64 // MaxMessageBytes, 0 for no limit
	viol  error // ErrMessageTooBig once the message is over the limit
	err   error // io.EOF after the last chunk, errAborted, or an I/O error
	chunk int   // chunks received
}

// bdat runs "BDAT size [LAST]". The first chunk of a message calls the
// Handler, which reads the rest of the message through further BDAT
// commands; those arrive here too, and only announce their chunk.
//
// A first chunk that is not the last finds the session already in state
// chunk (its rule is early), so that the commands read between the chunks
// are looked up there. That rule's next state holds only while the
// message lasts: when bdat returns, later commands have already moved the
// session on (BDAT LAST to identified, RSET, QUIT), so for a first chunk that
// is not the last bdat reports false, leaving the state as they set it.
func (c *conn) bdat(arg string) bool {
	size, last, ok := parseBDAT(arg)
	if !ok {
		c.replyAndClose(replyBadChunk)
		return false
	}
	if c.chunks != nil {
		// A further chunk, read on behalf of the Handler.
		c.chunks.left, c.chunks.last, c.chunks.next = size, last, true
		return true
	}
	env := c.env
	r := &chunkReader{c: c, left: size, last: last, max: limitOf(c.srv.MaxMessageBytes, DefaultMaxMessageBytes)}
	c.chunks = r
	defer func() { c.chunks = nil }()
	c.startMessage()
	results := c.deliver(env, r)
	r.drain()
	switch {
	case errors.Is(r.err, errAborted):
		return false
	case r.err != io.EOF:
		c.readFailed(r.err)
		return false
	}
	c.replyDelivered(env, r.viol, results, r.size)
	return last
}

// parseBDAT parses BDAT's argument: chunk-size [SP "LAST"] (RFC 3030 4),
// the size 1 to 20 digits.
func parseBDAT(arg string) (size int64, last bool, ok bool) {
	digits, end, hasEnd := strings.Cut(arg, " ")
	if hasEnd {
		if !strings.EqualFold(end, "LAST") {
			return 0, false, false
		}
		last = true
	}
	n, ok := parseDigits(digits, 20)
	if !ok || n > 1<<62 {
		return 0, false, false
	}
	return int64(n), last, true
}

// refuseChunk refuses a BDAT command with r and reads and drops its chunk,
// so that its octets are never taken for commands (go-smtp issue #315).
func (c *conn) refuseChunk(arg string, r *Reply) {
	size, _, ok := parseBDAT(arg)
	if !ok {
		c.replyAndClose(replyBadChunk)
		return
	}
	c.reply(r)
	c.startMessage()
	if _, err := c.discardN(size); err != nil {
		c.readFailed(err)
	}
}

// discardN reads and drops n octets of a chunk. It takes what br holds at
// a time, at most its buffer's size: bufio.Reader.Discard takes an int,
// which on 32-bit platforms holds less than a chunk size may be (20
// digits, RFC 3030 4), and the octets are traced as content.
func (c *conn) discardN(n int64) (int64, error) {
	var done int64
	for done < n {
		if c.br.Buffered() == 0 {
			if _, err := c.br.Peek(1); err != nil {
				return done, err
			}
		}
		k := int(min(n-done, int64(c.br.Buffered())))
		if c.tracer != nil {
			b, _ := c.br.Peek(k)
			c.traceOctets(TraceContent, b)
		}
		c.br.Discard(k)
		done += int64(k)
	}
	return done, nil
}

func (r *chunkReader) Read(p []byte) (int, error) {
	for r.left == 0 {
		if r.err != nil {
			return 0, r.err
		}
		if r.last {
			r.err = io.EOF
			return 0, io.EOF
		}
		r.nextChunk()
	}
	if r.viol != nil {
		return 0, r.viol
	}
	if int64(len(p)) > r.left {
		p = p[:r.left]
	}
	n, err := r.c.br.Read(p)
	r.c.traceOctets(TraceContent, p[:n])
	r.left -= int64(n)
	r.size += int64(n)
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		r.err, r.left = err, 0
		return n, err
	}
	if r.max > 0 && r.size > r.max {
		// RFC 1870 6: too much mail data. The octets are still read,
		// by drain, so that the session stays in step.
		r.viol = ErrMessageTooBig
		return n, r.viol
	}
	return n, nil
}

// nextChunk answers the chunk just read (RFC 3030 2: 250 for each) and
// reads commands until one announces the next chunk or ends the
// transaction.
func (r *chunkReader) nextChunk() {
	c := r.c
	r.chunk++
	c.reply(&Reply{Code: 250, Enhanced: "2.0.0", Text: strconv.Itoa(r.chunk) + " chunks received"})
	for !r.next {
		c.waitCommand(false)
		if c.step(false) {
			r.err = errAborted // QUIT, or the session ended
			return
		}
		if c.state != stateChunk && !r.next {
			r.err = errAborted // RSET, HELO, EHLO (RFC 3030 2)
			return
		}
	}
	r.next = false
	c.resumeMessage() // not startMessage: MessageTimeout spans all the chunks
}

// drain reads the rest of the message, whatever the Handler left, until the
// last chunk is read or the transaction ends.
func (r *chunkReader) drain() {
	var buf [4096]byte
	for {
		if _, err := r.Read(buf[:]); err != nil && err != r.viol {
			return
		}
		if r.viol != nil && r.left > 0 {
			n, err := r.c.discardN(r.left)
			r.left -= n
			if err != nil {
				r.err, r.left = err, 0
			}
		}
	}
}
