package smtpd

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/mail"
)

// A Handler delivers messages: it is called once per message, after the
// client sent the final "." of DATA (RFC 5321 4.1.1.4).
//
// ServeSMTP reads the message from msg: the Received trace field the server
// prepends (unless [Server.DisableReceived] is set) followed by the message
// exactly as the client sent it, with CRLF line ends and dot-stuffing undone.
// The reader streams from the connection; the message is never held in memory
// by the server.
//
// The server answers 250 only after ServeSMTP returned nil: returning nil
// means the message is now the handler's responsibility (RFC 5321 4.2.5).
// A *[Reply] error is sent to the client as it is; any other error is logged
// and answered "451 4.3.0". If msg returned an error other than io.EOF
// (the message broke a limit, held a bare line end, or the connection
// failed), the message is refused with that error whatever ServeSMTP
// returns, so a handler should stop and return the error it got. The
// server reads and discards whatever the handler leaves unread.
//
// ctx is cancelled when the connection ends ([Server.Close] ends them all),
// and [Server.DeliveryTimeout] after the end of the message (the final "."
// or the last BDAT chunk). The session waits for ServeSMTP, so it should
// return soon after ctx ends: with ctx's error (the client then gets 451),
// or nil if the message was stored all the same. env is the handler's to
// keep; the server never changes it afterwards.
type Handler interface {
	ServeSMTP(ctx context.Context, env *Envelope, msg io.Reader) error
}

// An LMTPHandler is a Handler that gives each recipient its own result, as
// LMTP allows (RFC 2033 4.2): ServeLMTP returns one error per
// env.Recipients, in their order, nil for "delivered". It is used when
// [Server.LMTP] is set, instead of ServeSMTP. If it returns the wrong
// number of results, every recipient gets 451.
type LMTPHandler interface {
	Handler
	ServeLMTP(ctx context.Context, env *Envelope, msg io.Reader) []error
}

// HandlerFunc adapts a function to a [Handler].
type HandlerFunc func(ctx context.Context, env *Envelope, msg io.Reader) error

// ServeSMTP calls f(ctx, env, msg).
func (f HandlerFunc) ServeSMTP(ctx context.Context, env *Envelope, msg io.Reader) error {
	return f(ctx, env, msg)
}

// MessageHandler returns a [Handler] that parses the message header with
// net/mail and passes the parsed message, with its envelope, to f. A message
// whose header cannot be parsed is refused with "554 5.6.0". The body is
// still streamed: msg.Body reads from the connection.
func MessageHandler(f func(ctx context.Context, env *Envelope, msg *mail.Message) error) Handler {
	return HandlerFunc(func(ctx context.Context, env *Envelope, r io.Reader) error {
		m, err := mail.ReadMessage(r)
		if err != nil {
			var reply *Reply
			if errors.As(err, &reply) {
				return reply // a limit or bare line end hit while reading the header
			}
			return &Reply{Code: 554, Enhanced: "5.6.0", Text: "Malformed message header"}
		}
		return f(ctx, env, m)
	})
}

// Envelope is what the client said about a message (RFC 5321 2.3.1), with
// what the server knows about the session it came in.
//
// Callbacks receive the envelope as it stands: [Server.CheckSender] sees the
// reverse-path being checked and no recipients, [Server.CheckRecipient] sees
// the recipients accepted so far. The server makes a new Envelope for each
// transaction; a callback may keep the one it was given.
type Envelope struct {
	// ID identifies the message in the Received field, in logs and in the
	// 250 reply; unique within the server's process.
	ID string

	// RemoteAddr and LocalAddr are the connection's addresses.
	RemoteAddr net.Addr
	LocalAddr  net.Addr

	// Hello is the argument of the client's HELO or EHLO; ESMTP is true
	// for EHLO.
	Hello string
	ESMTP bool

	// TLS is the state of the connection's TLS layer, nil without TLS.
	TLS *tls.ConnectionState

	// AuthIdentity is who the client authenticated as with AUTH
	// (RFC 4954), "" when it did not.
	AuthIdentity string

	// ReversePath is the MAIL argument; IsNull for "<>" (a bounce,
	// RFC 5321 4.5.5). MailParams are all its ESMTP parameters, as sent;
	// the fields below hold those the server knows, checked and decoded.
	ReversePath Path
	MailParams  Params

	// Body is the BODY parameter in upper case: "7BIT", "8BITMIME"
	// (RFC 6152), "BINARYMIME" (RFC 3030), or "" when not given.
	Body string

	// SMTPUTF8 is set when MAIL declared SMTPUTF8 (RFC 6531): addresses
	// and header fields may hold UTF-8.
	SMTPUTF8 bool

	// Ret and EnvID are the DSN parameters of MAIL (RFC 3461 4.3, 4.4):
	// "FULL", "HDRS" or ""; the envelope identifier, xtext decoded. The
	// server sends no delivery status notifications; it passes them on.
	Ret   string
	EnvID string

	// MailAuth is MAIL's AUTH parameter (RFC 4954 5), xtext decoded: the
	// mailbox that submitted the message, "<>" for unknown, "" when not
	// given.
	MailAuth string

	// Recipients are the accepted RCPT commands, in order.
	Recipients []Recipient
}

// Recipient is one accepted RCPT command: a forward-path and its ESMTP
// parameters, as sent, with the DSN parameters (RFC 3461) checked and
// decoded: Notify is NOTIFY's list in upper case ("NEVER", or some of
// "SUCCESS", "FAILURE", "DELAY"), nil when not given; ORCPT is the original
// recipient as addr-type ";" address, xtext decoded, "" when not given.
type Recipient struct {
	ForwardPath Path
	Params      Params
	Notify      []string
	ORCPT       string
}

// discard is the Handler of a Server whose Handler is nil: it reads and
// drops every message, as a mail sink does.
var discard = HandlerFunc(func(_ context.Context, _ *Envelope, msg io.Reader) error {
	_, err := io.Copy(io.Discard, msg)
	return err
})
