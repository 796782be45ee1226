package smtpd

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// ErrServerClosed is returned by [Server.Serve] and [Server.ListenAndServe]
// after a call to [Server.Shutdown] or [Server.Close].
var ErrServerClosed = errors.New("smtpd: Server closed")

// A Server is an SMTP server. The zero value is a working mail sink: it
// accepts every sender and recipient and discards every message. Set Handler
// to keep messages, and the Check fields to refuse what you do not want.
//
// Limits default to the minimums RFC 5321 4.5.3 requires a server to accept;
// a negative limit means "no limit". Fields must not be changed after the
// server started serving. Any number of Servers may run in one process.
type Server struct {
	// Addr is the TCP address ListenAndServe listens on, "host:port".
	// Empty means ":smtp" (port 25). Port 0 picks a free port; to learn
	// which, listen yourself and call [Server.Serve] with the listener.
	Addr string

	// Hostname is the server's name in the greeting, the EHLO reply and
	// the Received field. Empty means os.Hostname, or "localhost" when
	// that fails.
	Hostname string

	// Banner is the text after "220 <Hostname> ESMTP" in the greeting
	// (seed -banner). Empty means "smtpd".
	Banner string

	// Handler delivers messages (seed -deliver; see [MessageHandler] for
	// -deliverMIME). Nil discards every message after reading it.
	Handler Handler

	// CheckConnection, when set, is called when a connection is accepted,
	// before the greeting (seed -validate_host). An error refuses the
	// client: the greeting becomes 554 with the error's text when it is a
	// *[Reply] (a fixed text otherwise), every command but QUIT gets 503
	// (RFC 5321 3.1), and the connection is closed after a few commands or
	// a short timeout. A *Reply with code 421 is sent as it is and the
	// connection closed at once.
	CheckConnection func(ctx context.Context, remote net.Addr) error

	// CheckHello, when set, is called for HELO and EHLO with env.Hello set
	// to the client's argument, after the server checked its syntax. An
	// error refuses the command; the session stays as it was.
	CheckHello func(ctx context.Context, env *Envelope) error

	// CheckSender, when set, is called at MAIL with env.ReversePath and
	// env.MailParams set to the command's (seed -validate_sender). An
	// error refuses the command and no transaction starts. The null
	// reverse-path "<>" is checked like any other (env.ReversePath.IsNull).
	CheckSender func(ctx context.Context, env *Envelope) error

	// CheckRecipient, when set, is called at RCPT with the recipients
	// accepted so far in env and the one to check in rcpt (seed
	// -validate_recipient). An error refuses this recipient only. It is
	// not called for <Postmaster> nor for postmaster at Hostname, which
	// RFC 5321 4.5.1 requires a server to accept; postmaster at other
	// domains is checked, since accepting it unchecked would relay mail.
	CheckRecipient func(ctx context.Context, env *Envelope, rcpt Recipient) error

	// Verify, when set, answers VRFY (RFC 5321 3.5.1). A nil error means
	// "252 Cannot VRFY user" (as when Verify is nil, which RFC 5321 7.3
	// allows); a *Reply is sent as it is, so to confirm a mailbox return
	// &Reply{Code: 250, Text: "Jane <jane@example.org>"}.
	Verify func(ctx context.Context, env *Envelope, arg string) error

	// Expand, when set, answers EXPN (RFC 5321 3.5.2) with one 250 line
	// per member returned. An empty list answers 550; an error is sent as
	// its reply. Nil means EXPN is not implemented (502).
	Expand func(ctx context.Context, env *Envelope, arg string) ([]string, error)

	// MaxMessageBytes limits a message's size (content as sent, before the
	// Received field). It is advertised with SIZE (RFC 1870). Zero means
	// 32 MiB.
	MaxMessageBytes int64

	// MaxRecipients limits the RCPT commands of one transaction; beyond
	// it the client gets 452 (RFC 5321 4.5.3.1.10). Zero means 100, the
	// minimum RFC 5321 4.5.3.1.8 requires.
	MaxRecipients int

	// MaxLineLength limits a line of message text including CRLF. Zero
	// means 1000 (RFC 5321 4.5.3.1.6).
	MaxLineLength int

	// MaxCommandLength limits a command line including CRLF. Zero means
	// 512 (RFC 5321 4.5.3.1.4). Raise it with care: it sets the read
	// buffer of every connection when larger than 4096.
	MaxCommandLength int

	// MaxLocalPart, MaxDomain and MaxPath limit a mailbox's local-part, a
	// domain, and a whole reverse- or forward-path. Zero means 64, 255 and
	// 256 (RFC 5321 4.5.3.1.1 to 4.5.3.1.3).
	MaxLocalPart int
	MaxDomain    int
	MaxPath      int

	// MaxConnections limits concurrent connections; a connection beyond
	// it gets "421 Too many connections" and is closed. Zero means 1000.
	MaxConnections int

	// MaxErrors is how many syntax and sequence errors (replies 500 to
	// 504 and 555) a session may cause; the next one ends it with 421
	// (RFC 5321 7.8 allows closing after repeated errors). Zero means 10.
	MaxErrors int

	// CommandTimeout is how long the server waits for a whole command
	// line, and for a reply to be written. A client that trickles a line
	// byte by byte is cut off at the same deadline. Zero means 5 minutes
	// (RFC 5321 4.5.3.2.7).
	CommandTimeout time.Duration

	// DataTimeout is how long the server waits for each block of message
	// data. Zero means 3 minutes (RFC 5321 4.5.3.2.5).
	DataTimeout time.Duration

	// MessageTimeout limits the whole transfer of one message, from 354 to
	// the final ".", so that a client sending a byte every few minutes is
	// cut off. Zero means 30 minutes.
	MessageTimeout time.Duration

	// DeliveryTimeout is how long after the final "." the Handler's
	// context stays alive; then it is cancelled. Zero means 10 minutes,
	// the time a client waits for the reply (RFC 5321 4.5.3.2.6).
	DeliveryTimeout time.Duration

	// AcceptBareLineEnds, when set, accepts a CR or LF that is not part of
	// a CRLF in message text, as content. They never end a line or the
	// data either way. By default such a message is refused with
	// [ErrBareLineEnd] after its end (RFC 5321 2.3.8; SMTP smuggling).
	// Command lines are always strict.
	AcceptBareLineEnds bool

	// DisableReceived, when set, stops the server from prepending a
	// Received trace field (RFC 5321 4.4) to each message.
	DisableReceived bool

	// Logger receives the server's log: sessions, messages and errors, at
	// Info level and above, and commands at Debug level. Message content
	// is never logged. Nil means no logging.
	Logger *slog.Logger

	hostOnce sync.Once
	host     string
	idPrefix string
	idSeq    atomic.Uint64

	inShutdown atomic.Bool
	mu         sync.Mutex
	listeners  map[*net.Listener]struct{}
	conns      map[*conn]struct{}
}

// Defaults for the fields whose zero value means "the default".
const (
	defaultMaxMessageBytes = 32 << 20
	defaultMaxRecipients   = 100
	defaultMaxLineLength   = 1000
	defaultMaxCommand      = 512
	defaultMaxLocalPart    = 64
	defaultMaxDomain       = 255
	defaultMaxPath         = 256
	defaultMaxConnections  = 1000
	defaultMaxErrors       = 10
	defaultCommandTimeout  = 5 * time.Minute
	defaultDataTimeout     = 3 * time.Minute
	defaultMessageTimeout  = 30 * time.Minute
	defaultDeliveryTimeout = 10 * time.Minute

	// A refused client (CheckConnection) may send this many commands
	// besides QUIT, for at most refusedTimeout, before it is cut off.
	refusedCommandLimit = 3
	refusedTimeout      = 30 * time.Second
)

// orDefault returns v, or def when v is zero, or 0 ("no limit") when v is
// negative.
func orDefault[T int | int64 | time.Duration](v, def T) T {
	switch {
	case v == 0:
		return def
	case v < 0:
		return 0
	}
	return v
}

// ListenAndServe listens on srv.Addr and serves connections on it. It always
// returns a non-nil error; after Shutdown or Close, ErrServerClosed.
func (srv *Server) ListenAndServe() error {
	if srv.shuttingDown() {
		return ErrServerClosed
	}
	addr := srv.Addr
	if addr == "" {
		addr = ":smtp"
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return srv.Serve(l)
}

// Serve accepts connections on l and serves each in its own goroutine.
// Serve closes l when it returns. It always returns a non-nil error; after
// Shutdown or Close, ErrServerClosed.
func (srv *Server) Serve(l net.Listener) error {
	if !srv.trackListener(&l, true) {
		l.Close()
		return ErrServerClosed
	}
	defer srv.trackListener(&l, false)
	defer l.Close()

	var backoff time.Duration // after a temporary Accept error, as net/http does
	for {
		rwc, err := l.Accept()
		if err != nil {
			if srv.shuttingDown() {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isResourceError(err) {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				srv.logError("accept failed; retrying", "error", err, "delay", backoff)
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		c := srv.newConn(rwc)
		if !srv.trackConn(c, true) {
			go srv.refuse(rwc)
			continue
		}
		go c.serve()
	}
}

// Shutdown stops the server gracefully: it closes the listeners, answers
// "421 4.3.2" to every session that is waiting for a command and closes it,
// and lets sessions in the middle of a message finish that message (they
// get 421 at their next command). It returns when all sessions have ended,
// or ctx's error when ctx ends first; then Close ends the rest.
func (srv *Server) Shutdown(ctx context.Context) error {
	srv.inShutdown.Store(true)
	srv.closeListeners()

	// Poll as net/http does: sessions end on their own time.
	wait := time.Millisecond
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		if srv.closeIdleConns() {
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

// Close closes the listeners and every connection at once, without a reply,
// and cancels the contexts the callbacks got. Messages not yet answered are
// not acknowledged, so clients will send them again. For a graceful stop,
// use Shutdown.
func (srv *Server) Close() error {
	srv.inShutdown.Store(true)
	err := srv.closeListeners()
	srv.mu.Lock()
	defer srv.mu.Unlock()
	for c := range srv.conns {
		c.rwc.Close()
		c.cancel()
	}
	return err
}

func (srv *Server) shuttingDown() bool { return srv.inShutdown.Load() }

func (srv *Server) trackListener(l *net.Listener, add bool) bool {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if !add {
		delete(srv.listeners, l)
		return true
	}
	if srv.shuttingDown() {
		return false
	}
	if srv.listeners == nil {
		srv.listeners = make(map[*net.Listener]struct{})
	}
	srv.listeners[l] = struct{}{}
	return true
}

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

// trackConn adds c to the server's connections, unless MaxConnections are
// open already, or removes it.
func (srv *Server) trackConn(c *conn, add bool) bool {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if !add {
		delete(srv.conns, c)
		return true
	}
	if limit := orDefault(srv.MaxConnections, defaultMaxConnections); limit > 0 && len(srv.conns) >= limit {
		return false
	}
	if srv.conns == nil {
		srv.conns = make(map[*conn]struct{})
	}
	srv.conns[c] = struct{}{}
	return true
}

// closeIdleConns sends 421 to the sessions waiting for a command and closes
// them. It reports whether no connection is left.
func (srv *Server) closeIdleConns() bool {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	for c := range srv.conns {
		c.closeIfIdle()
	}
	return len(srv.conns) == 0
}

// refuse answers a connection beyond MaxConnections with 421 (RFC 5321
// 3.8) and closes it.
func (srv *Server) refuse(rwc net.Conn) {
	defer rwc.Close()
	rwc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	rwc.Write(srv.greetingLine(replyTooManyConns))
	srv.logInfo("connection refused: too many connections", "remote", rwc.RemoteAddr().String())
}

// greetingLine formats a reply sent instead of a command reply, as the
// greeting: the server's name first (RFC 5321 4.3.1, 3.1), no enhanced code
// (RFC 2034 3).
func (srv *Server) greetingLine(r *Reply) []byte {
	b := strconv.AppendInt(nil, int64(r.code()), 10)
	b = append(b, ' ')
	b = append(b, srv.hostname()...)
	b = append(b, ' ')
	b = appendText(b, r.Text)
	return append(b, "\r\n"...)
}

func (srv *Server) hostname() string {
	srv.hostOnce.Do(func() {
		srv.host = srv.Hostname
		if srv.host == "" {
			if h, err := os.Hostname(); err == nil && isDomain(h) {
				srv.host = h
			} else {
				srv.host = "localhost"
			}
		}
		var b [6]byte
		rand.Read(b[:])
		srv.idPrefix = hex.EncodeToString(b[:])
	})
	return srv.host
}

// newID returns a message ID unique within this process: a random prefix
// chosen when the server starts, and a sequence number.
func (srv *Server) newID() string {
	srv.hostname() // sets idPrefix
	b := make([]byte, 0, 24)
	b = append(b, srv.idPrefix...)
	b = strconv.AppendUint(b, srv.idSeq.Add(1), 36)
	return string(b)
}

func (srv *Server) logInfo(msg string, args ...any) {
	if srv.Logger != nil {
		srv.Logger.Info(msg, args...)
	}
}

func (srv *Server) logError(msg string, args ...any) {
	if srv.Logger != nil {
		srv.Logger.Error(msg, args...)
	}
}

// isResourceError reports whether an Accept error is the process running out
// of file descriptors, which passes when connections close.
func isResourceError(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE)
}
