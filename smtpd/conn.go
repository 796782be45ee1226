package smtpd

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"math"
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

// errShutdown ends a session that waits for a command while the server
// shuts down; the session answers 421 (readFailed).
var errShutdown = errors.New("smtpd: server shutting down")

// Buffers are shared by all sessions through pools: a session takes them
// only while it reads or writes (see conn.br and conn.bw), and a server that
// takes one message per connection would otherwise allocate them for each.
var (
	readerPool sync.Pool
	writerPool sync.Pool
)

const bufferSize = 4096

func (srv *Server) newConn(rwc net.Conn) *conn {
	c := &conn{srv: srv, rwc: rwc, stream: rwc, closer: rwc, remote: rwc.RemoteAddr(), local: rwc.LocalAddr()}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.in.c = c
	// The greeting phase (PROXY header, early talkers, a TLS handshake's
	// first octets) reads through br; awaitInput releases it later.
	c.br = getReader(&c.in)
	return c
}

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

// greet calls the connection check and sends the greeting (RFC 5321 4.3.1):
// 220 when the client may proceed, 554 when it is refused (3.1). It reports
// whether the session goes on.
func (c *conn) greet() bool {
	srv := c.srv
	c.state = stateConnected
	protocol := "ESMTP "
	if srv.LMTP {
		protocol = "LMTP "
	}
	greeting := &Reply{Code: 220, Text: protocol + orString(srv.Banner, "smtpd")}
	if srv.CheckConnection != nil {
		err := c.call("CheckConnection", func() error {
			return srv.CheckConnection(c.ctx, c.remote)
		})
		if err != nil {
			c.state = stateRefused
			greeting = &Reply{Code: 554, Text: "No SMTP service here"}
			var r *Reply
			if errors.As(err, &r) {
				greeting.Text = r.Text
				if r.code() == 421 {
					c.send(srv.greetingLine(r), r.code())
					c.flush()
					return false
				}
			}
			c.logInfo("connection refused by CheckConnection")
		}
	}
	if c.state != stateRefused && c.talkedFirst() {
		return false
	}
	c.send(srv.greetingLine(greeting), greeting.code())
	return true
}

// talkedFirst reports whether the session ends before the greeting: because
// the client spoke first, which it must not (RFC 5321 4.3.1), or left.
// Input that came with a PROXY header is early, unless
// DisablePipeliningSync; with a GreetingDelay, so is anything that arrives
// within it. An early client gets 554 (RFC 5321 3.1) and is cut off.
func (c *conn) talkedFirst() bool {
	srv := c.srv
	if c.implicitTLS != nil {
		return false // the client waited for the handshake
	}
	early := !srv.DisablePipeliningSync && c.br.Buffered() > 0
	if !early && srv.GreetingDelay > 0 {
		// Idle: Shutdown may answer for the session while it waits.
		c.in.setDeadline(time.Now().Add(srv.GreetingDelay), 0, true)
		_, err := c.br.Peek(1)
		var ne net.Error
		switch {
		case err == nil:
			early = true
		case errors.As(err, &ne) && ne.Timeout():
			// Silence, as it should be.
		default:
			c.readFailed(err)
			return true
		}
	}
	if early {
		c.logInfo("client talked before the greeting", "octets", c.br.Buffered())
		c.traceBuffered()
		c.send(srv.greetingLine(replyPregreet), replyPregreet.code())
	}
	return early
}

// speaksSMTP looks at the client's first octet, as soon as it arrives: every
// SMTP command starts with a letter (RFC 5321 4.1.1). Anything else is
// another protocol talking to the wrong port (a TLS handshake, a binary
// probe), and gets one reply and the end of the session instead of a 500
// for each line it may or may not ever end (Postfix's
// smtpd_forbidden_commands has the same rule). It reports whether the
// session goes on.
func (c *conn) speaksSMTP() bool {
	c.waitCommand(true)
	b, err := c.br.Peek(1)
	if err != nil {
		c.readFailed(err)
		return false
	}
	if !isLetter(b[0]) {
		c.logInfo("not SMTP: the first octet is not a letter")
		c.traceBuffered()
		c.replyAndClose(replyNotSMTP)
		return false
	}
	return true
}

// isHTTPRequest reports whether line, the session's first, is an HTTP
// request line (RFC 9112 3: method SP request-target SP HTTP-version): a
// browser or proxy made to talk to an SMTP port, as in the ALPACA attack,
// whose headers and body would follow as SMTP commands. The methods of
// RFC 9110 9 are not SMTP verbs, so their name and a target are enough;
// any other method shows by its version.
func isHTTPRequest(line []byte) bool {
	method, rest, ok := bytes.Cut(line, []byte(" "))
	if !ok || len(rest) == 0 {
		return false
	}
	switch string(method) {
	case "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH":
		return true
	}
	_, version, ok := bytes.Cut(rest, []byte(" "))
	return ok && bytes.HasPrefix(version, []byte("HTTP/"))
}

func isLetter(b byte) bool { return 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' }

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

func orReply(r, def *Reply) *Reply {
	if r != nil {
		return r
	}
	return def
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
			c.flushBy(time.Now().Add(shutdownReplyTimeout))
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
		c.logAt(slog.LevelDebug, "command", "verb", verb, "state", c.state.String())
	}
	if c.unsynchronized(verb) {
		c.traceCommand(verb, "sent behind a command whose reply the client must wait for", "RFC 2920 3.1; RFC 5321 4.3.1")
		c.logInfo("client did not wait for a reply", "verb", verb, "state", c.state.String(), "octets", c.br.Buffered())
		c.replyAndClose(replyUnsynchronized)
		return
	}
	rule, g, refusal := lookup(c, verb, arg)
	if c.tracer != nil {
		c.traceDecision(verb, rule, g, refusal)
	}
	switch {
	case refusal != nil && (verb == "BDAT" || verb == "BDAT LAST"):
		c.refuseChunk(arg, refusal)
		return
	case refusal != nil:
		c.reply(refusal)
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

// enter moves the session to state next, by rule.
func (c *conn) enter(next state, rule *rule) {
	if c.tracer != nil && next != c.state {
		c.trace(TraceEvent{Kind: TraceState, Verb: rule.verb, State: c.state.String(), Next: next.String(), RFC: rfcOf(rule.rfc)})
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

// reply queues a reply. It is sent when the server next waits for the
// client (connReader.Read), so the replies to a pipelined group of commands
// leave in one write (RFC 2920 3.2).
func (c *conn) reply(r *Reply) {
	if isProtocolError(r.code()) {
		c.errors++
	}
	c.out = r.appendLine(c.out[:0], c.esmtp, ' ')
	c.send(append(c.out, "\r\n"...), r.code())
}

// replyLines queues a multiline reply (RFC 5321 4.2.1): every line but the
// last has a hyphen after the code. esc says whether the lines carry an
// enhanced code; the EHLO reply does not (RFC 2034 3).
func (c *conn) replyLines(code int, enhanced string, esc bool, lines []string) {
	c.out = c.out[:0]
	for i, text := range lines {
		sep := byte('-')
		if i == len(lines)-1 {
			sep = ' '
		}
		r := Reply{Code: code, Enhanced: enhanced, Text: text}
		c.out = append(r.appendLine(c.out, esc, sep), "\r\n"...)
	}
	c.send(c.out, code)
}

// send queues a formatted reply, all its lines with their CRLF.
func (c *conn) send(b []byte, code int) {
	c.write(b)
	if c.tracer != nil {
		c.trace(TraceEvent{Kind: TraceReply, Data: b, Code: code})
	}
}

// replyAndClose sends r now and ends the session.
func (c *conn) replyAndClose(r *Reply) {
	c.reply(r)
	c.flush()
	c.state = stateDone
}

// isProtocolError reports whether a reply code says the client broke the
// protocol (syntax or sequence), as opposed to a refusal by policy.
func isProtocolError(code int) bool {
	return code >= 500 && code <= 504 || code == 555
}

func (c *conn) tooManyErrors() bool {
	limit := limitOf(c.srv.MaxErrors, DefaultMaxErrors)
	if c.state == stateRefused {
		limit = refusedCommandLimit
	}
	return limit > 0 && c.errors >= limit
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

// end closes the connection and returns the buffers.
func (c *conn) end() {
	c.flush()
	if c.tracer != nil {
		c.trace(TraceEvent{Kind: TraceEnd, Err: c.ended})
	}
	c.rwc.Close()
	c.cancel()
	c.srv.release(c)
	c.logInfo("session ended")
	c.free()
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
