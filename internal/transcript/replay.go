package transcript

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"time"
)

// Options tune a replay.
type Options struct {
	// ReplyTimeout bounds the wait for each reply. Zero means 10s. It is a
	// bound for broken servers, never a means of synchronisation: a reply
	// that comes is read as soon as it comes.
	ReplyTimeout time.Duration

	// IgnoreEnhanced skips enhanced-code checks, for a server that does
	// not offer ENHANCEDSTATUSCODES (RFC 2034).
	IgnoreEnhanced bool

	// TLSConfig is the client's TLS configuration for the starttls event.
	// Nil fails any case that starts TLS.
	TLSConfig *tls.Config

	// Shutdown starts a graceful shutdown of the server, for the shutdown
	// event; it must not wait for the shutdown to end. Nil fails any case
	// that shuts the server down.
	Shutdown func()

	// Quit ends the session with QUIT once the steps are done, after a
	// failure too, on the connection as it then is (inside TLS when the
	// case started it), and waits briefly for the reply or the close.
	// For servers on the network, which must not be left holding a
	// session. If the server is reading message data, QUIT is data and
	// the message is abandoned, never completed.
	Quit bool
}

// Replay runs t's session over conn: it sends the client's bytes, reads and
// checks the server's replies and events, and returns the first step that
// went otherwise as a *Failure. It does not close conn, nor check
// deliveries (see CheckDeliveries).
func Replay(conn net.Conn, t *Transcript, opt Options) error {
	r := &replayer{t: t, conn: conn, br: bufio.NewReader(conn), opt: opt}
	if r.opt.ReplyTimeout == 0 {
		r.opt.ReplyTimeout = 10 * time.Second
	}
	err := r.run()
	if opt.Quit && !r.closed {
		r.quit()
	}
	return err
}

// quit sends QUIT and reads until the server closes or two seconds pass.
// Errors do not matter here: the server may have closed already.
func (r *replayer) quit() {
	r.pending = append(r.pending[:0], "QUIT\r\n"...)
	r.werr = nil
	r.flush()
	if r.werr != nil {
		return
	}
	r.conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	io.Copy(io.Discard, r.br)
}

type replayer struct {
	t       *Transcript
	conn    net.Conn
	br      *bufio.Reader
	opt     Options
	pending []byte
	werr    error    // the last write error, reported with what follows it
	sent    []byte   // the last write, for the failure report
	last    []string // the last reply read
	closed  bool     // the client closed the connection
	ended   bool     // the server closed where the case allows it (OrClosed)
}

func (r *replayer) fail(s Step, want, got string) error {
	if r.werr != nil {
		got += " (after a failed write: " + r.werr.Error() + ")"
	}
	return &Failure{Name: r.t.Name, Line: s.Line, Want: want, Got: got, Sent: shorten(r.sent)}
}

// flush writes the queued client bytes in one write. A write error is kept:
// a server that refused and closed may still have sent the reply that says
// why, so the read that follows decides.
func (r *replayer) flush() {
	if len(r.pending) == 0 || r.closed {
		return
	}
	r.conn.SetWriteDeadline(time.Now().Add(r.opt.ReplyTimeout))
	if _, err := r.conn.Write(r.pending); err != nil && r.werr == nil {
		r.werr = err
	}
	r.sent = append(r.sent[:0], r.pending...)
	r.pending = r.pending[:0]
}

func (r *replayer) run() error {
	for _, s := range r.t.Steps {
		if err := r.step(s); err != nil {
			return err
		}
		if r.ended {
			return nil
		}
	}
	r.flush()
	if r.br.Buffered() > 0 {
		s := r.t.Steps[len(r.t.Steps)-1]
		b, _ := r.br.Peek(r.br.Buffered())
		return r.fail(s, "nothing more from the server", fmt.Sprintf("%q", b))
	}
	return nil
}

func (r *replayer) step(s Step) error {
	switch s.Kind {
	case Send:
		if r.closed {
			return r.fail(s, "an open connection to send on", "the client closed it")
		}
		r.pending = append(r.pending, s.Data...)
	case Segment:
		r.flush()
	case Pause:
		r.flush()
		time.Sleep(s.Duration) // part of the case: the client is slow
	case Close:
		r.flush()
		r.closed = true
		// Half-close when we can, so that replies to what was sent can
		// still be read by later steps. Over TLS, CloseWrite sends
		// close_notify and half-closes the connection beneath.
		if cw, ok := r.conn.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		} else {
			r.conn.Close()
		}
	case Expect:
		r.flush()
		reply, err := r.readReply()
		if err == errClosed && s.Reply.OrClosed {
			r.ended = true
			return nil
		}
		if err != nil {
			return r.fail(s, "reply "+s.Reply.String(), err.Error())
		}
		r.last = reply
		if !s.Reply.Match(reply, r.opt.IgnoreEnhanced) {
			if s.Reply.OrClosed && refusal(reply) && r.hungUp() {
				r.ended = true // refused, then closed: RFC 5321 7.8
				return nil
			}
			return r.fail(s, "reply "+s.Reply.String(), fmt.Sprintf("%q", reply))
		}
	case Contains, Lacks:
		found := false
		for _, l := range r.last {
			if len(l) >= 4 && s.Pattern.MatchString(l[4:]) {
				found = true
			}
		}
		if found != (s.Kind == Contains) {
			verb := "a reply line matching "
			if s.Kind == Lacks {
				verb = "no reply line matching "
			}
			return r.fail(s, verb+s.Pattern.String(), fmt.Sprintf("%q", r.last))
		}
	case Closed:
		want := fmt.Sprintf("the server to close within %v", s.Duration)
		switch got, err := r.listen(s.Duration); {
		case err == nil:
			return r.fail(s, want, fmt.Sprintf("%q", got))
		case isTimeout(err):
			return r.fail(s, want, "the connection still open")
		}
	case Silent:
		want := fmt.Sprintf("silence for %v", s.Duration)
		switch got, err := r.listen(s.Duration); {
		case err == nil:
			return r.fail(s, want, fmt.Sprintf("%q", got))
		case !isTimeout(err):
			return r.fail(s, want, "the connection closed ("+err.Error()+")")
		}
	case StartTLS:
		return r.startTLS(s)
	case Shutdown:
		if r.opt.Shutdown == nil {
			return r.fail(s, "a runner that can shut the server down", "none (a server on the network)")
		}
		r.flush()
		r.opt.Shutdown()
	}
	return nil
}

// startTLS runs the client's TLS handshake over the connection as it is
// (RFC 3207 4.2) and goes on through TLS. Whatever the server sent in the
// clear that no step read is a failure, not something to carry into the
// TLS session: a reply the server sent after its 220 would be the
// server-side form of the injection that the pipelined-plaintext cases
// look for on the client's side (CVE-2011-0411).
func (r *replayer) startTLS(s Step) error {
	if r.opt.TLSConfig == nil {
		return r.fail(s, "a TLS client configuration", "none given to the replayer")
	}
	if r.closed {
		return r.fail(s, "an open connection to start TLS on", "the client closed it")
	}
	r.flush()
	if r.br.Buffered() > 0 {
		b, _ := r.br.Peek(r.br.Buffered())
		return r.fail(s, "nothing more in the clear before the TLS handshake", fmt.Sprintf("%q", b))
	}
	tc := tls.Client(r.conn, r.opt.TLSConfig)
	tc.SetDeadline(time.Now().Add(r.opt.ReplyTimeout))
	if err := tc.Handshake(); err != nil {
		return r.fail(s, "a TLS handshake", err.Error())
	}
	tc.SetDeadline(time.Time{})
	r.conn = tc
	r.br = bufio.NewReader(tc)
	return nil
}

// shorten quotes b for a report, keeping its start and end when long.
func shorten(b []byte) string {
	const keep = 160
	if len(b) <= 2*keep {
		return fmt.Sprintf("%q", b)
	}
	return fmt.Sprintf("%q ... (%d bytes) ... %q", b[:keep], len(b)-2*keep, b[len(b)-keep:])
}

// refusal reports whether reply is a 4yz or 5yz reply.
func refusal(reply []string) bool {
	c := reply[len(reply)-1][0]
	return c == '4' || c == '5'
}

// hungUp reports whether the server closes the connection, sending nothing
// more, within two seconds (or the reply timeout, if shorter): a server that
// refuses and hangs up does it at once, and one that keeps the session open
// should not cost a run more than that.
func (r *replayer) hungUp() bool {
	_, err := r.listen(min(r.opt.ReplyTimeout, 2*time.Second))
	return err != nil && !isTimeout(err)
}

// errClosed is readReply's error when the server closed the connection
// where a reply should have begun.
var errClosed = errors.New("the connection closed")

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout() || errors.Is(err, os.ErrDeadlineExceeded)
}

// readReply reads one reply (RFC 5321 4.2.1: lines "CODE-text" then one
// "CODE text") and returns its lines without CRLF.
func (r *replayer) readReply() ([]string, error) {
	r.conn.SetReadDeadline(time.Now().Add(r.opt.ReplyTimeout))
	var lines []string
	for {
		line, err := r.br.ReadString('\n')
		if err != nil {
			switch {
			case isTimeout(err):
				err = fmt.Errorf("no reply within %v", r.opt.ReplyTimeout)
			case err == io.EOF || errors.Is(err, syscall.ECONNRESET):
				err = errClosed
			}
			if line != "" || lines != nil {
				err = fmt.Errorf("%q, then %v", append(lines, line), err)
			}
			return nil, err
		}
		l, ok := strings.CutSuffix(line, "\r\n")
		if !ok || len(l) < 3 || !isDigits(l[:3]) || len(l) > 3 && l[3] != ' ' && l[3] != '-' {
			return nil, fmt.Errorf("malformed reply line %q after %q", line, lines)
		}
		lines = append(lines, l)
		if len(l) == 3 || l[3] == ' ' {
			return lines, nil
		}
	}
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// listen sends what is queued and waits up to d for the server: it returns
// what arrived (nil error), or the read error: a timeout when the server
// stayed silent, EOF or another error when it closed.
func (r *replayer) listen(d time.Duration) ([]byte, error) {
	r.flush()
	r.conn.SetReadDeadline(time.Now().Add(d))
	b, err := r.br.ReadByte()
	if err != nil {
		return nil, err
	}
	rest, _ := r.br.Peek(r.br.Buffered())
	return append([]byte{b}, rest...), nil
}
