package smtpd

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"runtime/debug"
	"sync"
	"time"
)

// conn is one SMTP session: its connection, buffers, state and the current
// mail transaction. All fields but those under mu belong to the session's
// goroutine.
type conn struct {
	srv    *Server
	rwc    net.Conn        // the connection as accepted
	stream net.Conn        // rwc, or the TLS layer over it
	remote net.Addr        // the client's address: rwc's, or a PROXY header's
	local  net.Addr        // the address the client connected to, likewise
	client netip.Addr      // remote's IP as counted for MaxConnectionsPerIP; zero when not counted
	ctx    context.Context // cancelled when the session ends
	cancel context.CancelFunc
	log    *slog.Logger // Server.Logger with the client's address; see logAt

	in connReader // rwc as the buffered reader sees it
	wr connWriter // and as the buffered writer sees it
	// br and bw come from their pools, and only while the session needs
	// them, so that an idle session holds no buffer: br while input is
	// buffered or a message is read (see awaitInput), bw while replies
	// are queued (see writer and flush). Either is nil otherwise.
	br *bufio.Reader
	bw *bufio.Writer
	// wake takes the first octets to arrive after an idle wait for a
	// command; awaitInput hands them to a pooled br through in.pending.
	// RFC 5321 4.5.3.1.4: a command line is at most 512 octets, so a
	// command usually arrives whole in one read.
	wake [512]byte
	out  []byte // scratch space for formatting a reply
	long []byte // a command line longer than br's buffer

	// armed is the deadline last set on the stream, for reads and writes
	// alike (one runtime timer, not two); writeBy is the deadline of the
	// replies being written. lazyDeadline: see setDeadline.
	armed        time.Time
	writeBy      time.Time
	lazyDeadline bool

	// tracer receives the session's events (Server.Trace), nil when it
	// is not traced; raw then holds the octets of the line last read, as
	// received, and ended why the session ended (TraceEnd).
	tracer    func(*TraceEvent)
	raw       []byte
	ended     error
	pipelined bool // the line last read was buffered already (awaitInput)

	state        state
	esmtp        bool                 // the client greeted with EHLO: send enhanced codes (RFC 2034)
	helloName    string               // the client's HELO, EHLO or LHLO argument, for Envelope.Hello
	tls          *tls.ConnectionState // nil before TLS
	implicitTLS  *tls.Config          // set when the connection starts with a handshake (RFC 8314)
	authIdentity string               // who the client authenticated as (RFC 4954), "" before
	authFailures int
	env          *Envelope // the mail transaction, nil outside one
	errors       int       // syntax and sequence errors so far (Server.MaxErrors)
	dr           dataReader
	chunks       *chunkReader // the message being sent with BDAT, nil otherwise
	msgDeadline  time.Time    // the current message must have arrived by then (MessageTimeout)
	msg          messageReader
	result       [1]error // the Handler's result, as deliver returns it

	// mu guards idle, woken and closer, which Shutdown and Close use from
	// their goroutines.
	mu sync.Mutex
	// closer is where Close writes its 421: the stream while the session
	// is in the clear or in TLS, nil during a TLS handshake, where a line
	// in the clear would only break it.
	closer net.Conn

	// byeMu guards bye, and is held while the session's last 421 is
	// written, by the session on shutdown or by Close: one is enough,
	// and Close must not cut off the one the session is writing.
	byeMu sync.Mutex
	bye   bool
	// idle: the session is blocked reading a command and has written all
	// its replies, so Shutdown may end it.
	idle bool
	// woken: Shutdown set a read deadline in the past to end the wait.
	woken bool
}

func (srv *Server) newConn(rwc net.Conn) *conn {
	c := &conn{srv: srv, rwc: rwc, stream: rwc, closer: rwc, remote: rwc.RemoteAddr(), local: rwc.LocalAddr()}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.in.c, c.wr.c = c, c
	// Not under a WrapConn, whose Read and Write may record the timeouts
	// a lazy deadline causes (see setDeadline).
	_, c.lazyDeadline = rwc.(*net.TCPConn)
	// The greeting phase (PROXY header, early talkers, a TLS handshake's
	// first octets) reads through br; awaitInput releases it later.
	c.br = getReader(&c.in)
	return c
}

// serve runs the session until QUIT, an error, or the server's end.
func (c *conn) serve() {
	if c.srv.Trace != nil {
		c.tracer = c.srv.Trace(c.remote, c.local)
	}
	defer c.end()
	defer func() {
		// A bug of ours must cost one session, not the server.
		if p := recover(); p != nil {
			c.logError("session panicked", "panic", p, "stack", string(debug.Stack()))
		}
	}()
	if !c.readProxy() {
		return
	}
	if !c.client.IsValid() {
		// From a trusted proxy: the client is known only now.
		if r := c.srv.admitClient(c); r != nil {
			c.logInfo("connection refused", "reason", r.Text)
			if c.implicitTLS == nil { // see Server.refuse
				c.send(c.srv.refusalLine(r), r.code())
			}
			return
		}
	}
	c.logInfo("session started")

	if c.implicitTLS != nil {
		// A PROXY header may have come in the same read as the start
		// of the handshake.
		early, _ := c.br.Peek(c.br.Buffered())
		early = append([]byte(nil), early...)
		c.br.Discard(len(early))
		if !c.handshake(c.implicitTLS, early) {
			return
		}
	}
	if !c.greet() || !c.speaksSMTP() {
		return
	}
	for first := true; !c.step(first); first = false {
		c.waitCommand(true) // speaksSMTP started the first command's wait
	}
}

// step reads one command line and runs it: the one command loop, used by
// serve between messages and by chunkReader between the chunks of a BDAT
// message (RFC 3030 2). first says the line is the session's first. It
// reports whether the session is over.
func (c *conn) step(first bool) (over bool) {
	line, bad, err := c.readCommandLine()
	if first {
		c.pipelined = false // speaksSMTP waited for it, and left it buffered
	}
	switch {
	case err != nil:
		c.traceOctets(TraceInput, c.raw) // part of a line, then the end
		c.readFailed(err)
	case first && bad == nil && isHTTPRequest(line):
		c.traceCommand("", "an HTTP request: not SMTP (the ALPACA attack)", "RFC 5321 7.8")
		c.logInfo("not SMTP: an HTTP request")
		c.replyAndClose(replyNotSMTP)
	case bad != nil:
		c.traceCommand("", "a line that breaks the line rules", "RFC 5321 2.3.8, 4.5.3.1.4")
		c.reply(bad)
	default:
		c.dispatch(line)
	}
	if c.state != stateDone && c.tooManyErrors() {
		c.replyAndClose(replyTooManyErrors)
	}
	return c.state == stateDone
}

func orString(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// readFailed ends a session whose read failed: on a timeout the
// client is told so (RFC 5321 4.5.3.2 allows the server to close), on
// shutdown it gets 421 (3.8); on EOF or a network error there is no one to
// tell.
func (c *conn) readFailed(err error) {
	c.ended = err
	defer func() { c.state = stateDone }()
	var ne net.Error
	switch {
	case errors.Is(err, errShutdown):
		c.byeMu.Lock()
		if !c.bye { // else Close said it already
			c.bye = true
			// Within a short deadline: a client that does not read
			// must not keep Shutdown waiting.
			c.reply(replyShuttingDown)
			c.flushWithin(shutdownReplyTimeout)
		}
		c.byeMu.Unlock()
	case errors.As(err, &ne) && ne.Timeout():
		c.logInfo("session timed out")
		c.replyAndClose(replyTimeout)
	case err == io.EOF:
		// The client closed the connection without QUIT.
	default:
		c.logInfo("read failed", "error", err)
	}
}

// dispatch runs one command line: the state table decides whether the
// command is allowed now, the command's handler whether it succeeds.
func (c *conn) dispatch(line []byte) {
	verb, arg := splitCommand(line)
	if c.logEnabled(slog.LevelDebug) { // the arguments would be allocated even if not logged
		c.logCommand(verb)
	}
	if c.unsynchronized(verb) {
		c.refuseUnsynchronized(verb)
		return
	}
	rule, g, refusal := lookup(c, verb, arg)
	if c.tracer != nil {
		c.traceDecision(verb, rule, g, refusal)
	}
	switch {
	case refusal != nil:
		refuse(c, verb, arg, refusal)
		return
	case rule.reply != nil:
		c.reply(rule.reply)
		return
	}
	if rule.early {
		c.enter(rule.next, rule)
	}
	ok := commands[verb](c, arg)
	if ok && rule.next != stay && c.state != stateDone {
		c.enter(rule.next, rule)
	}
}

// logCommand logs the command verb at debug level. It and
// refuseUnsynchronized are functions of their own, so that dispatch, which
// runs for every command, does not reserve their arguments on its stack.
func (c *conn) logCommand(verb string) {
	c.logAt(slog.LevelDebug, "command", "verb", verb, "state", c.state.String())
}

// refuseUnsynchronized ends the session of a client that did not wait for
// a reply it had to wait for (see unsynchronized).
func (c *conn) refuseUnsynchronized(verb string) {
	c.traceCommand(verb, "sent behind a command whose reply the client must wait for", "RFC 2920 3.1; RFC 5321 4.3.1")
	c.logInfo("client did not wait for a reply", "verb", verb, "state", c.state.String(), "octets", c.br.Buffered())
	c.replyAndClose(replyUnsynchronized)
}

// enter moves the session to state next, by rule.
func (c *conn) enter(next state, rule *rule) {
	if c.tracer != nil && next != c.state {
		c.trace(&TraceEvent{Kind: TraceState, Verb: rule.verb, State: c.state.String(), Next: next.String(), RFC: rfcOf(rule.rfc)})
	}
	c.state = next
}

// unsynchronized reports whether the client sent more input behind a
// command whose reply it had to wait for: a command whose place in a
// pipelined group is last (RFC 2920 3.1), or any command when the client
// has not negotiated PIPELINING, which it can do only with EHLO or LHLO
// (RFC 5321 4.3.1: without an extension that says otherwise, the client
// waits for each reply). c.esmtp tells: the EHLO reply always offers
// PIPELINING, and HELO and STARTTLS clear it. BDAT is never checked,
// since its chunk follows it at once (RFC 3030 2). The command must not
// run: its reply would tell the client it may go on.
func (c *conn) unsynchronized(verb string) bool {
	if c.srv.DisablePipeliningSync || c.br.Buffered() == 0 || verb == "BDAT" || verb == "BDAT LAST" {
		return false
	}
	return !c.esmtp || placeOf(verb) == last
}

// splitCommand splits a command line into its verb, in upper case, and its
// argument (RFC 5321 4.1.1: verbs are case-insensitive, the argument follows
// one space). Trailing spaces are dropped, a leniency towards clients that
// send "QUIT ". A verb that is not a known one is returned as "".
func splitCommand(line []byte) (verb, arg string) {
	line = bytes.TrimRight(line, " ")
	v := line
	if i := bytes.IndexByte(line, ' '); i >= 0 {
		v, arg = line[:i], string(line[i+1:])
	}
	var upper [8]byte
	if len(v) > len(upper) {
		return "", arg
	}
	for i, b := range v {
		if 'a' <= b && b <= 'z' {
			b -= 'a' - 'A'
		}
		upper[i] = b
	}
	// Indexing a map with string(bytes) does not allocate; the stored key
	// is returned so that verb is a constant string.
	verb = verbNames[string(upper[:len(v)])]
	if verb == "BDAT" && len(arg) > 5 && equalFoldASCII(arg[len(arg)-5:], " LAST") {
		verb = "BDAT LAST" // a command of its own in the state table
	}
	return verb, arg
}

// verbNames maps each verb the server knows, in the table or as not
// implemented, to itself.
var verbNames = func() map[string]string {
	m := make(map[string]string)
	for v := range knownVerbs {
		m[v] = v
	}
	delete(m, "BDAT LAST") // BDAT with LAST, told apart by splitCommand
	for v := range notImplemented {
		m[v] = v
	}
	return m
}()

// end closes the connection and returns the buffers.
func (c *conn) end() {
	c.flush()
	if c.tracer != nil {
		c.trace(&TraceEvent{Kind: TraceEnd, Err: c.ended})
	}
	c.rwc.Close()
	c.cancel()
	c.srv.release(c)
	c.logInfo("session ended")
	c.free()
}

// call runs a user callback, turning a panic into an error so that one bad
// callback costs a 451, not the server (as net/http recovers handlers).
func (c *conn) call(name string, f func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			c.logError("callback panicked", "callback", name, "panic", p, "stack", string(debug.Stack()))
			err = replyInternal
		}
	}()
	return f()
}

// replyFor turns a callback's error into the reply to send: a *Reply as it
// is, anything else a fixed 451 with the error logged, never sent.
func (c *conn) replyFor(name string, err error) *Reply {
	var r *Reply
	if errors.As(err, &r) {
		return r
	}
	c.logError("callback failed", "callback", name, "error", err)
	return replyInternal
}

func (c *conn) logInfo(msg string, args ...any)  { c.logAt(slog.LevelInfo, msg, args...) }
func (c *conn) logError(msg string, args ...any) { c.logAt(slog.LevelError, msg, args...) }

func (c *conn) logEnabled(level slog.Level) bool {
	return c.srv.Logger != nil && c.srv.Logger.Enabled(c.ctx, level)
}

// logAt logs msg with the client's address. The session's logger is made
// at its first record, and nothing is formatted below the logger's level,
// so that a server that logs little pays little per session.
func (c *conn) logAt(level slog.Level, msg string, args ...any) {
	if !c.logEnabled(level) {
		return
	}
	if c.log == nil {
		c.log = c.srv.Logger.With("remote", c.remote.String())
	}
	c.log.Log(c.ctx, level, msg, args...)
}
