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

	date atomic.Pointer[formattedDate] // the Received field's, formatted once a second

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
