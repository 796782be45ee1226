package smtpd

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"log/slog"
	"net"
	"net/netip"
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
	// Empty means ":25", or ":465" for ListenAndServeTLS (RFC 8314 7.3).
	// Port 0 picks a free port; to learn which, listen yourself and call
	// [Server.Serve] with the listener.
	Addr string

	// Hostname is the server's name in the greeting, the EHLO reply and
	// the Received field (see [ValidHostname]). Empty means
	// [DefaultHostname]: os.Hostname, or "localhost" when that is no
	// domain name.
	Hostname string

	// Banner is the text after "220 <Hostname> ESMTP" (or LMTP) in the
	// greeting. Empty means "smtpd".
	Banner string

	// Handler delivers messages (see [MessageHandler] for a parsed
	// message). Nil discards every message after reading it.
	Handler Handler

	// CheckConnection, when set, is called when a connection is accepted,
	// before the greeting. An error refuses the client: the greeting
	// becomes 554 with the error's text when it is a *[Reply] (a fixed
	// text otherwise), every command but QUIT gets 503 (RFC 5321 3.1),
	// and the connection is closed after a few commands or a short
	// timeout. A *Reply with code 421 is sent as it is and the
	// connection closed at once.
	CheckConnection func(ctx context.Context, remote net.Addr) error

	// CheckHello, when set, is called for HELO and EHLO with env.Hello set
	// to the client's argument, after the server checked its syntax. An
	// error refuses the command; the session stays as it was.
	CheckHello func(ctx context.Context, env *Envelope) error

	// CheckSender, when set, is called at MAIL with env.ReversePath and
	// env.MailParams set to the command's. An error refuses the command
	// and no transaction starts. The null reverse-path "<>" is checked
	// like any other (env.ReversePath.IsNull).
	CheckSender func(ctx context.Context, env *Envelope) error

	// CheckRecipient, when set, is called at RCPT with the recipients
	// accepted so far in env and the one to check in rcpt. An error
	// refuses this recipient only. It is
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
	// 512 (RFC 5321 4.5.3.1.4).
	MaxCommandLength int

	// MaxLocalPart, MaxDomain and MaxPath limit a mailbox's local-part, a
	// domain, and a whole reverse- or forward-path. Zero means 64, 255 and
	// 256 (RFC 5321 4.5.3.1.1 to 4.5.3.1.3).
	MaxLocalPart int
	MaxDomain    int
	MaxPath      int

	// MaxConnections limits concurrent connections; a connection beyond
	// it gets "421 Too many connections" (RFC 5321 3.8) and is closed,
	// before any of its session is set up, so that a flood of refused
	// connections costs little. Zero means 1000.
	MaxConnections int

	// MaxConnectionsPerIP limits the concurrent connections from one
	// client IP address, so that one client cannot take every connection
	// MaxConnections allows (Postfix's smtpd_client_connection_count_limit):
	// the connection beyond it gets "421 Too many connections from your
	// address" and is closed. Behind the PROXY protocol (ProxyTrusted) the
	// client is the address the header carries (the proxy's own for its
	// health checks). Zero means 50, but at most half of MaxConnections
	// (and at least 1), so that by default no one client holds every slot,
	// as Postfix's 50 is half its default process limit; and by default
	// loopback clients are not limited, as Postfix spares $mynetworks:
	// they are this machine's own programs (a test sending mail to a local
	// sink from many workers), or a proxy on this machine that does not
	// send the PROXY protocol, behind which every client has its address.
	// A positive value limits every client, loopback ones too; a value
	// above MaxConnections acts as MaxConnections; a negative value means
	// no limit. Each IPv6 address counts on its own.
	MaxConnectionsPerIP int

	// MaxErrors is how many syntax and sequence errors (replies 500 to
	// 504 and 555) a session may cause: the reply to the last one is
	// followed by 421 and the end of the session (RFC 5321 7.8 allows
	// closing after repeated errors). Zero means 10.
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
	// the final ".", or from the first BDAT chunk to the end of the last,
	// commands between chunks included, so that a client sending a byte
	// (or a chunk) every few minutes is cut off. Zero means 30 minutes.
	MessageTimeout time.Duration

	// DeliveryTimeout is how long after the end of each message (the
	// final "." or the last BDAT chunk) the Handler's context stays alive;
	// then it is cancelled, and a Handler that returns the context's error
	// has the client answered "451 4.3.0", a temporary failure it retries.
	// Zero means 5 minutes: a client waits 10 minutes for that reply
	// (RFC 5321 4.5.3.2.6), and the server must answer well before the
	// client gives up, or the client may send again a message that was
	// stored ("multiple copies", 4.5.3.2.6). A Handler that returns nil
	// after its context ended has still taken the message: the client
	// gets 250.
	DeliveryTimeout time.Duration

	// TLSConfig enables STARTTLS (RFC 3207) when set: it is offered in
	// the EHLO reply until the session is encrypted. [Server.ServeTLS]
	// uses it for implicit TLS (RFC 8314). It must hold a certificate
	// (Certificates, GetCertificate or GetConfigForClient).
	TLSConfig *tls.Config

	// RequireTLS, when set, refuses MAIL before STARTTLS with
	// "530 5.7.0" (RFC 3207 4).
	RequireTLS bool

	// TLSHandshakeTimeout limits a TLS handshake. Zero means 30 seconds.
	TLSHandshakeTimeout time.Duration

	// Authenticate, when set, offers AUTH PLAIN and LOGIN (RFC 4954,
	// RFC 4616) and checks the credentials they carry: username and
	// password, and the authorization identity the client asked for
	// (PLAIN only; empty when not given, which means "username"). Return
	// nil to accept, [ErrAuthFailed] (or another *Reply) to refuse. An
	// error that is not a *Reply is logged and answered "451 4.3.0".
	// The identity that reaches the callbacks afterwards, as
	// env.AuthIdentity, is identity when set, else username.
	Authenticate func(ctx context.Context, env *Envelope, identity, username, password string) error

	// AuthMechanisms adds SASL mechanisms (RFC 4422) to AUTH, keyed by
	// their upper-case name; each function starts one exchange. Names here
	// replace the built-in PLAIN and LOGIN.
	AuthMechanisms map[string]func(env *Envelope) AuthMechanism

	// AllowInsecureAuth, when set, offers AUTH on connections without
	// TLS. By default AUTH is offered only after STARTTLS or on implicit
	// TLS, and answered "538 5.7.11" before, so that passwords never
	// cross the network in the clear.
	AllowInsecureAuth bool

	// RequireAuth, when set, refuses MAIL before AUTH with "530 5.7.0"
	// (RFC 4954 6).
	RequireAuth bool

	// MaxAuthFailures is how many failed AUTH attempts a session may
	// make; the next failure ends it with 421. Zero means 3.
	MaxAuthFailures int

	// LMTP, when set, makes the server speak LMTP (RFC 2033) instead of
	// SMTP: the client greets with LHLO, and after the message the server
	// sends one reply per accepted recipient. A Handler that implements
	// [LMTPHandler] gives each recipient its own result.
	LMTP bool

	// ProxyTrusted lists the networks whose connections begin with a
	// PROXY protocol header, version 1 or 2 (HAProxy's "send-proxy" and
	// "send-proxy-v2"): the client address it carries replaces the
	// connection's own for the callbacks, the log and the Received
	// field. Connections from these networks without a valid header are
	// closed; connections from other networks must not send one. Nil
	// disables the PROXY protocol.
	ProxyTrusted []netip.Prefix

	// AcceptBareLineEnds, when set, accepts a CR or LF that is not part of
	// a CRLF in message text, as content. They never end a line or the
	// data either way. By default such a message is refused with
	// [ErrBareLineEnd] after its end (RFC 5321 2.3.8; SMTP smuggling).
	// Command lines are always strict.
	AcceptBareLineEnds bool

	// DisablePipeliningSync, when set, turns off the check that a client
	// waits for the replies it must wait for. By default a client may send
	// commands without waiting only where RFC 2920 3.1 allows it: after
	// EHLO or LHLO, whose reply offers PIPELINING, in groups where EHLO,
	// HELO, LHLO, DATA, STARTTLS, AUTH, NOOP, VRFY, EXPN, HELP, QUIT and
	// unknown verbs come last (STATE-TABLE.md lists each verb's place).
	// Before EHLO, after HELO and after STARTTLS it must wait for every
	// reply (RFC 5321 4.3.1). When input is already waiting behind a
	// command that must wait, the server answers "554 5.5.0" instead of
	// running the command and closes the connection, as Postfix
	// (smtpd_forbid_unauth_pipelining) and Exim (smtp_enforce_sync) do.
	// This stops transaction stuffing and SMTP smuggling: a message end
	// followed in the same write by MAIL, RCPT, DATA and a second message
	// delivers the first message only. Input that came with a PROXY
	// header, before the greeting, is refused the same way; GreetingDelay
	// waits for more.
	//
	// Authenticated clients are held to the same rules: RFC 2920 makes no
	// exception for them, an authenticated client is often a relay that
	// forwards other people's mail (the path smuggling takes), and the
	// clients that authenticate pipeline as RFC 2920 says.
	//
	// The check sees what the server has read and not yet used, not
	// bytes still on their way: a client that splits its writes may slip
	// through, but its bytes are then taken in order and nothing is
	// delivered that the client did not mean.
	DisablePipeliningSync bool

	// GreetingDelay, when positive, is how long the server listens before
	// it sends the greeting. A client that sends anything in that time
	// gets "554" instead of the greeting and the connection is closed:
	// RFC 5321 4.3.1 has the client wait for the greeting, and bots that
	// talk without listening give themselves away (Postfix's postscreen
	// calls it the pregreet test; it waits 6 seconds). Every client waits
	// that long for its greeting. It applies whatever
	// DisablePipeliningSync says, but not to implicit TLS, whose handshake
	// already made the client wait for the server (Postfix exempts it
	// too), nor to a client CheckConnection refused. Zero means no delay.
	GreetingDelay time.Duration

	// DisableReceived, when set, stops the server from prepending a
	// Received trace field (RFC 5321 4.4) to each message.
	DisableReceived bool

	// WrapConn, when set, wraps each connection as the session reads and
	// writes it: once at accept, and again over the TLS layer after a
	// handshake (STARTTLS or implicit TLS), so that the wrapper always
	// sees the session in the clear. A wrapper of a *tls.Conn can find its
	// earlier self with NetConn. It is the hook for what works on bytes
	// (counting, shaping); to follow a session, Trace says more. A
	// connection refused at accept (MaxConnections, MaxConnectionsPerIP,
	// shutdown) has no session and is not wrapped.
	WrapConn func(net.Conn) net.Conn

	// Trace, when set, is called as each session starts, with the
	// connection's addresses, and returns the function that receives the
	// session's events (see [TraceEvent]), or nil not to trace it: each
	// command line as received, each reply as sent, the state changes
	// with the state table's rows, TLS, AUTH with its secrets masked, and
	// each message's start, content and end.
	Trace func(remote, local net.Addr) func(*TraceEvent)

	// Logger receives the server's log: sessions, messages and errors, at
	// Info level and above, and commands at Debug level. Message content
	// is never logged. Nil means no logging.
	Logger *slog.Logger

	hostOnce sync.Once
	host     string
	idPrefix string
	idSeq    atomic.Uint64

	refuseOnce sync.Once
	refuseBusy []byte // the greeting-form 421s, formatted once
	refuseIP   []byte

	inShutdown atomic.Bool
	mu         sync.Mutex
	listeners  map[*net.Listener]struct{}
	conns      map[*conn]struct{} // the sessions, for Shutdown and Close
	active     int                // connections admitted: conns and those being set up
	perIP      map[netip.Addr]int // active connections by client address
}

// The defaults of the fields whose zero value means "the default",
// exported so that a program's flags can show them.
const (
	DefaultMaxMessageBytes     = 32 << 20
	DefaultMaxRecipients       = 100
	DefaultMaxLineLength       = 1000
	DefaultMaxCommandLength    = 512
	DefaultMaxLocalPart        = 64
	DefaultMaxDomain           = 255
	DefaultMaxPath             = 256
	DefaultMaxConnections      = 1000
	DefaultMaxConnectionsPerIP = 50
	DefaultMaxErrors           = 10
	DefaultCommandTimeout      = 5 * time.Minute
	DefaultDataTimeout         = 3 * time.Minute
	DefaultMessageTimeout      = 30 * time.Minute
	DefaultDeliveryTimeout     = 5 * time.Minute
	DefaultTLSHandshakeTimeout = 30 * time.Second
	DefaultMaxAuthFailures     = 3
)

const (
	// A refused client (CheckConnection) may send this many commands
	// besides QUIT, for at most refusedTimeout, before it is cut off.
	refusedCommandLimit = 3
	refusedTimeout      = 30 * time.Second

	// shutdownReplyTimeout bounds the write of the 421 a session sends
	// when the server shuts down, so that a client that does not read
	// keeps Shutdown waiting no longer than this.
	shutdownReplyTimeout = time.Second

	// closeReplyTimeout bounds the 421 Close writes to every session.
	closeReplyTimeout = 100 * time.Millisecond
)

// limitOf reads a limit or timeout field as its documentation states it:
// zero means the default, def; a negative value means no limit; a positive
// one is the limit. It returns the limit in force, with 0 standing for "no
// limit" inside the package, as the zero time.Time stands for "no
// deadline": callers test limit > 0, and deadlineIn(0) sets no deadline.
func limitOf[T int | int64 | time.Duration](v, def T) T {
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
	return srv.listenAndServe(":25", nil)
}

// ListenAndServeTLS is ListenAndServe with implicit TLS (RFC 8314): every
// connection starts with a TLS handshake, before the greeting. certFile and
// keyFile name PEM files with the certificate chain and its key; when both
// are empty, TLSConfig must hold the certificate.
func (srv *Server) ListenAndServeTLS(certFile, keyFile string) error {
	config, err := srv.tlsConfigFor(certFile, keyFile)
	if err != nil {
		return err
	}
	return srv.listenAndServe(":465", config)
}

func (srv *Server) listenAndServe(defaultAddr string, config *tls.Config) error {
	if srv.shuttingDown() {
		return ErrServerClosed
	}
	l, err := net.Listen("tcp", orString(srv.Addr, defaultAddr))
	if err != nil {
		return err
	}
	return srv.serve(l, config)
}

// Serve accepts connections on l and serves each in its own goroutine.
// Serve closes l when it returns. It always returns a non-nil error; after
// Shutdown or Close, ErrServerClosed.
func (srv *Server) Serve(l net.Listener) error {
	return srv.serve(l, nil)
}

// ServeTLS is Serve with implicit TLS (RFC 8314) on every connection; see
// ListenAndServeTLS for certFile and keyFile.
func (srv *Server) ServeTLS(l net.Listener, certFile, keyFile string) error {
	config, err := srv.tlsConfigFor(certFile, keyFile)
	if err != nil {
		l.Close()
		return err
	}
	return srv.serve(l, config)
}

// tlsConfigFor returns a copy of TLSConfig with the certificate from
// certFile and keyFile added, as net/http's ServeTLS does.
func (srv *Server) tlsConfigFor(certFile, keyFile string) (*tls.Config, error) {
	config := &tls.Config{}
	if srv.TLSConfig != nil {
		config = srv.TLSConfig.Clone()
	}
	if certFile != "" || keyFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, err
		}
		config.Certificates = append(config.Certificates, cert)
	}
	if !canServeTLS(config) {
		return nil, errors.New("smtpd: TLS needs a certificate: none in TLSConfig, no certFile and keyFile")
	}
	return config, nil
}

// serve is Serve; config, when set, starts each connection with a TLS
// handshake.
func (srv *Server) serve(l net.Listener, config *tls.Config) error {
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
		// The limits are checked before anything is set up for a
		// session, so that a flood of connections beyond them costs
		// little more than the accept.
		client, _ := addrIP(rwc.RemoteAddr())
		if srv.proxyTrusted(client) {
			// The client is the one the PROXY header names; the
			// session counts it once it has read the header.
			client = netip.Addr{}
		}
		if r := srv.admit(client); r != nil {
			srv.refuse(rwc, r, config != nil)
			continue
		}
		if srv.WrapConn != nil {
			rwc = srv.WrapConn(rwc)
		}
		c := srv.newConn(rwc)
		c.implicitTLS = config
		if config != nil {
			c.closer = nil // nothing in the clear before the handshake
		}
		c.client = client
		if !srv.register(c) {
			// Shutdown or Close came after admit: not served.
			srv.release(c)
			rwc.Close()
			c.free()
			continue
		}
		go c.serve()
	}
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

// admit counts a new connection against MaxConnections and, when client is
// a valid address, against MaxConnectionsPerIP. It returns nil, or the
// reply that refuses the connection.
func (srv *Server) admit(client netip.Addr) *Reply {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if srv.shuttingDown() {
		return replyShuttingDown
	}
	if limit := limitOf(srv.MaxConnections, DefaultMaxConnections); limit > 0 && srv.active >= limit {
		return replyTooManyConns
	}
	if r := srv.countClient(client); r != nil {
		return r
	}
	srv.active++
	return nil
}

// admitClient counts c's client against MaxConnectionsPerIP, for a
// connection whose client was not known at accept: the one a PROXY header
// names. It returns nil, or the reply that refuses the connection.
func (srv *Server) admitClient(c *conn) *Reply {
	client, ok := addrIP(c.remote)
	if !ok {
		return nil // not TCP: no address to count by
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if r := srv.countClient(client); r != nil {
		return r
	}
	c.client = client
	return nil
}

// countClient counts one more connection from client, unless client is the
// zero Addr or has MaxConnectionsPerIP already. srv.mu is held.
func (srv *Server) countClient(client netip.Addr) *Reply {
	if !client.IsValid() {
		return nil
	}
	if limit := srv.maxConnsPerIP(client); limit > 0 && srv.perIP[client] >= limit {
		return replyTooManyFromIP
	}
	if srv.perIP == nil {
		srv.perIP = make(map[netip.Addr]int)
	}
	srv.perIP[client]++
	return nil
}

// maxConnsPerIP is MaxConnectionsPerIP for client with its default
// applied; 0 means no limit.
func (srv *Server) maxConnsPerIP(client netip.Addr) int {
	if srv.MaxConnectionsPerIP == 0 && client.IsLoopback() {
		return 0 // the default spares this machine's own clients
	}
	limit := limitOf(srv.MaxConnectionsPerIP, DefaultMaxConnectionsPerIP)
	if all := limitOf(srv.MaxConnections, DefaultMaxConnections); srv.MaxConnectionsPerIP == 0 && all > 0 {
		limit = min(limit, max(all/2, 1))
	}
	return limit
}

// register adds an admitted connection's session to those Shutdown and
// Close end. It fails once they have begun.
func (srv *Server) register(c *conn) bool {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if srv.shuttingDown() {
		return false
	}
	if srv.conns == nil {
		srv.conns = make(map[*conn]struct{})
	}
	srv.conns[c] = struct{}{}
	return true
}

// release undoes admit, admitClient and register for c, whose connection
// has closed.
func (srv *Server) release(c *conn) {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	delete(srv.conns, c)
	srv.active--
	if c.client.IsValid() {
		if srv.perIP[c.client]--; srv.perIP[c.client] <= 0 {
			delete(srv.perIP, c.client)
		}
	}
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

// refuse answers a connection that will not be served with r, a 421 in the
// greeting's form (RFC 5321 3.8, 4.2.3), and closes it. It runs in the
// accept loop, and costs no goroutine: a new TCP connection's send buffer
// is empty, so the short line is written at once, whatever the client
// does. Another kind of connection (from a listener of the caller's, such
// as tls.NewListener's, whose first write waits for a handshake) is
// answered from a goroutine. On an implicit TLS listener the connection is
// closed without a word: a line in the clear would reach the client as a
// broken TLS record, and a handshake would make a refusal cost as much as
// a session.
func (srv *Server) refuse(rwc net.Conn, r *Reply, implicitTLS bool) {
	if srv.Logger != nil { // the address is formatted only to be logged
		srv.logInfo("connection refused", "remote", rwc.RemoteAddr().String(), "reason", r.Text)
	}
	if implicitTLS {
		rwc.Close()
		return
	}
	line := srv.refusalLine(r)
	if _, ok := rwc.(*net.TCPConn); ok {
		// A bound in case that ever fails to hold, for the accept loop.
		rwc.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
		rwc.Write(line)
		rwc.Close()
		return
	}
	go func() {
		defer rwc.Close()
		rwc.SetWriteDeadline(time.Now().Add(5 * time.Second))
		rwc.Write(line)
	}()
}

// refusalLine returns r in the greeting's form, formatted once for the
// refusals that may come in floods.
func (srv *Server) refusalLine(r *Reply) []byte {
	srv.refuseOnce.Do(func() {
		srv.refuseBusy = srv.greetingLine(replyTooManyConns)
		srv.refuseIP = srv.greetingLine(replyTooManyFromIP)
	})
	switch r {
	case replyTooManyConns:
		return srv.refuseBusy
	case replyTooManyFromIP:
		return srv.refuseIP
	}
	return srv.greetingLine(r)
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
		srv.host = orString(srv.Hostname, DefaultHostname())
		var b [6]byte
		rand.Read(b[:])
		srv.idPrefix = hex.EncodeToString(b[:])
	})
	return srv.host
}

// DefaultHostname is the name a Server with no Hostname gives itself: the
// machine's host name when it is a domain name, else "localhost".
func DefaultHostname() string {
	if h, err := os.Hostname(); err == nil && isDomain(h) {
		return h
	}
	return "localhost"
}

// ValidHostname reports whether name can be a Server's Hostname, as the
// greeting and the EHLO reply give it (RFC 5321 4.1.1.1, 4.3.1): a domain
// name or an address literal.
func ValidHostname(name string) bool {
	return len(name) <= DefaultMaxDomain && (isDomain(name) || isAddressLiteral(name))
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
