package smtpd

import (
	"bufio"
	"bytes"
	"io"
)

// dataReader reads message text after a 354 reply (RFC 5321 4.1.1.4) and
// hands the content to the handler as an io.Reader, one line or part of a
// line at a time, so a message is never held in memory whole.
//
// It is strict where SMTP smuggling lives (RFC 5321 2.3.8): lines end only at
// CRLF, and the data ends only at CRLF "." CRLF. A bare CR or LF is never a
// line end, neither for the end mark nor for dot-unstuffing, whatever else
// is set.
//
// On a violation (ErrBareLineEnd, ErrLineTooLong, ErrMessageTooBig), Read
// first returns the content that precedes the octet at which the violation
// shows (for a bare CR, the octet after it; for a bare LF, the LF; for a
// limit, the first octet over it), then the violation, and keeps returning
// it. That octet is a property of the data, not of how bufio cuts it into
// pieces, so the error and the content before it are the same for any
// buffer size or Read size. The handler must treat the message as refused;
// the server calls drain to reach the end mark and then replies.
//
// One dataReader serves a whole connection: reset prepares it for the next
// message without allocating, and must be called before the first. Between
// reset and the end of drain nothing else may read the bufio.Reader: Read
// hands out slices of its buffer.
type dataReader struct {
	br         *bufio.Reader
	maxSize    int64 // content octets allowed, 0 for no limit
	maxLine    int   // octets per line, CRLF included, 0 for no limit
	acceptBare bool  // bare CR and LF are content, not violations
	// tee, when set, is called with each piece read from br, as the
	// client sent it: how a traced session sees its content.
	tee func([]byte)

	// buf is content not yet returned by Read. It aliases br's buffer,
	// which stays valid because br is read again only once buf is empty.
	buf  []byte
	err  error // what Read returns once buf is empty: io.EOF, viol or ioErr
	viol error // the first violation, or nil
	// ioErr is the error from br; io.EOF before the end mark is
	// io.ErrUnexpectedEOF, since the client never finished the message.
	ioErr error
	done  bool  // the end-of-data mark was consumed
	n     int64 // content octets so far, up to the first violation

	lineLen int  // octets of the current line read so far, a stuffing dot not counted
	bol     bool // the next octet starts a line
	cr      bool // the last octet read was CR
}

// reset prepares r to read one message from br. maxSize and maxLine of 0
// mean no limit. The CRLF that ended the DATA command counts as the first
// CRLF of the end mark, so data that starts with ".\r\n" is an empty
// message (RFC 5321 4.1.1.4).
func (r *dataReader) reset(br *bufio.Reader, maxSize int64, maxLine int, acceptBare bool) {
	*r = dataReader{br: br, maxSize: maxSize, maxLine: maxLine, acceptBare: acceptBare, bol: true}
}

// Read reads message content into p. It returns io.EOF after the end mark,
// a violation as described on dataReader, or the error from the
// bufio.Reader, with io.ErrUnexpectedEOF for a connection that ended before
// the end mark.
func (r *dataReader) Read(p []byte) (int, error) {
	// An empty p must not wait for the client.
	for len(r.buf) == 0 && len(p) > 0 {
		if r.err != nil {
			return 0, r.err
		}
		r.fill()
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

// drain reads and discards the rest of the data up to and including the end
// mark, so the session stays in step with the client whatever the handler
// read. It returns nil when the end mark was reached, or the error from the
// bufio.Reader otherwise. It keeps looking for violations until the first
// one, so violation tells the truth about the whole message.
func (r *dataReader) drain() error {
	for !r.done && r.ioErr == nil {
		r.buf = nil
		r.fill()
	}
	r.buf = nil
	return r.ioErr
}

// violation returns the first protocol violation seen (ErrMessageTooBig,
// ErrLineTooLong or ErrBareLineEnd), or nil.
func (r *dataReader) violation() error { return r.viol }

// size returns the number of content octets read so far, after
// dot-unstuffing, by Read or drain, up to the first violation.
func (r *dataReader) size() int64 { return r.n }

// fill reads the next piece of data from br: the rest of a line up to and
// including its LF, or as much of it as fits br's buffer. It sets buf to
// the content the piece holds, and err when the piece ends the data, breaks
// a rule or comes with an error.
func (r *dataReader) fill() {
	s, err := r.br.ReadSlice('\n')
	if r.tee != nil && len(s) > 0 {
		r.tee(s)
	}
	switch err {
	case nil:
	case bufio.ErrBufferFull:
		err = nil // a long line; the next piece continues it
	case io.EOF:
		err = io.ErrUnexpectedEOF
	}

	// RFC 5321 4.1.1.4: the data ends with CRLF "." CRLF. bol holds for the
	// first CRLF. bufio's smallest buffer is 16 octets, so a line of three
	// comes back whole unless the connection fails in its middle.
	if r.bol && string(s) == ".\r\n" {
		r.done = true
		r.fail(io.EOF)
		return
	}

	// RFC 5321 4.5.2: the client doubles a dot that starts a line, and
	// the server deletes the first dot of any line but the end mark,
	// so ".x", which a correct client never sends, becomes "x".
	start := 0
	if r.bol && len(s) > 0 && s[0] == '.' {
		start = 1
	}
	if r.viol == nil {
		end := max(r.check(s, start), start)
		r.buf = s[start:end]
		r.n += int64(len(r.buf))
	}

	if len(s) > 0 {
		last := s[len(s)-1]
		if last == '\n' {
			// Only CRLF starts a new line (RFC 5321 2.3.8); the CR
			// may have ended the previous piece. For the line length
			// a bare LF ends a line too, so that messages with LF
			// line ends, accepted with acceptBare, are not one long
			// line.
			r.bol = len(s) >= 2 && s[len(s)-2] == '\r' || len(s) == 1 && r.cr
			r.lineLen = 0
		} else {
			r.bol = false
			r.lineLen += len(s) - start
		}
		r.cr = last == '\r'
	}

	if err != nil {
		r.ioErr = err
		r.fail(err)
	}
}

// fail records err as what Read returns once buf is empty, unless an
// earlier error is recorded.
func (r *dataReader) fail(err error) {
	if r.err == nil {
		r.err = err
	}
}

// check applies the rules to s, a piece of a line whose content starts at
// s[start], and returns the index of the octet at which the first violation
// shows, or len(s). The violation is recorded. Earlier octets win, so that
// the result does not depend on where pieces are cut; at the same octet a
// bare line end wins over the line length, and that over the message size.
func (r *dataReader) check(s []byte, start int) int {
	at := len(s)
	var viol error
	// RFC 5321 2.3.8: CR and LF appear in mail data only together, as
	// CRLF. A bare one is what SMTP smuggling hides its end mark in.
	if !r.acceptBare {
		if i := bareAt(s, r.cr); i < at {
			at, viol = i, ErrBareLineEnd
		}
	}
	// RFC 5321 4.5.3.1.6: a line of text is at most maxLine octets
	// with its CRLF, "not counting the leading dot duplicated for
	// transparency".
	if r.maxLine > 0 && r.lineLen+len(s)-start > r.maxLine {
		if i := start + r.maxLine - r.lineLen; i < at {
			at, viol = i, ErrLineTooLong
		}
	}
	// RFC 1870 6 and RFC 5321 4.5.3.1.10: too much mail data.
	if r.maxSize > 0 && r.n+int64(len(s)-start) > r.maxSize {
		if i := start + int(r.maxSize-r.n); i < at {
			at, viol = i, ErrMessageTooBig
		}
	}
	if viol != nil {
		r.viol = viol
		r.fail(viol)
	}
	return at
}

// bareAt returns the index of the first octet in s that shows a bare CR or
// LF, or len(s). A CR shows bare at the next octet, when that is not LF;
// cr tells whether the octet before s, which ended the previous piece, was
// a CR. A CR at the end of s is judged with the next piece.
func bareAt(s []byte, cr bool) int {
	if cr && len(s) > 0 && s[0] != '\n' {
		return 0
	}
	// ReadSlice stops at the first LF, so only the last octet of s can
	// be LF. A first CR that is not bare is therefore the last or the
	// next to last octet, and there is no other CR to look at.
	if i := bytes.IndexByte(s, '\r'); i >= 0 && i+1 < len(s) && s[i+1] != '\n' {
		return i + 1
	}
	if n := len(s); n > 0 && s[n-1] == '\n' {
		if n == 1 && !cr || n >= 2 && s[n-2] != '\r' {
			return n - 1
		}
	}
	return len(s)
}
