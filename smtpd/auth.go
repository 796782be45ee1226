package smtpd

import (
	"bytes"
	"context"
	"encoding/base64"
	"sort"
	"strings"
)

// AUTH (RFC 4954) with SASL (RFC 4422): PLAIN (RFC 4616) and LOGIN built
// in, further mechanisms through [AuthMechanism].

// An AuthMechanism runs one SASL exchange (RFC 4422 3) on the server's side.
//
// Next is called with each response of the client, decoded from base64: the
// initial response first (nil when the client sent none, empty when it sent
// "="). It returns a challenge to send with 334 (done false), or the end of
// the exchange (done true) with the identity the client authenticated as,
// or an error that refuses the authentication: a *[Reply] is sent as it is
// ([ErrAuthFailed] for bad credentials); any other error is logged and
// answered "451 4.3.0".
type AuthMechanism interface {
	Next(ctx context.Context, response []byte) (challenge []byte, identity string, done bool, err error)
}

// ErrAuthFailed is the reply to bad credentials (RFC 4954 6).
var ErrAuthFailed = &Reply{Code: 535, Enhanced: "5.7.8", Text: "Authentication credentials invalid"}

var (
	replyAuthOK          = &Reply{Code: 235, Enhanced: "2.7.0", Text: "Authentication successful"}
	replyAuthCancelled   = &Reply{Code: 501, Enhanced: "5.5.2", Text: "Authentication cancelled"}
	replyAuthBadBase64   = &Reply{Code: 501, Enhanced: "5.5.2", Text: "Cannot decode response"}
	replyAuthBadSyntax   = &Reply{Code: 501, Enhanced: "5.5.2", Text: "Malformed authentication response"}
	replyAuthUnknownMech = &Reply{Code: 504, Enhanced: "5.5.4", Text: "Unrecognized authentication type"}
	replyAuthTwice       = &Reply{Code: 503, Enhanced: "5.5.1", Text: "Already authenticated"}
	replyAuthEncryption  = &Reply{Code: 538, Enhanced: "5.7.11", Text: "Encryption required for requested authentication mechanism"}
	replyAuthRequired    = &Reply{Code: 530, Enhanced: "5.7.0", Text: "Authentication required"}
	replyAuthLineTooLong = &Reply{Code: 500, Enhanced: "5.5.6", Text: "Authentication exchange line is too long"}
	replyAuthFailures    = &Reply{Code: 421, Enhanced: "4.7.0", Text: "Too many authentication failures, closing connection"}
)

// maxAuthLine is the longest AUTH command or response line the server
// takes: RFC 4954 4 asks for at least 12288 octets.
const maxAuthLine = 12288

// auth runs AUTH mechanism [initial-response] (RFC 4954 4).
//
// RFC 4954 4 sets the rules this follows: AUTH is not allowed in a
// transaction (the state table answers 503), nor again after it
// succeeded (503, a guard of its row); an unknown mechanism gets 504; each
// challenge goes out as "334 base64", each response comes back as one
// base64 line, "*" cancels with 501, and "=" is an empty initial response.
// Without TLS (unless AllowInsecureAuth) every mechanism gets 538,
// encryption required (RFC 4954 6; a guard too, see authOffered). 235 ends
// a success, and the identity goes into every later Envelope. Failures are
// counted: after MaxAuthFailures the session ends with 421, so that one
// connection cannot try passwords without end.
func (c *conn) auth(arg string) bool {
	// The table's guards have refused AUTH when it is not offered, after
	// a success, and without TLS (see guardAuthenticated).
	mechs := c.srv.authMechanisms()
	name, initial, hasInitial := strings.Cut(arg, " ")
	if name == "" {
		c.reply(replyNeedArgument) // RFC 4954 4: "AUTH" SP sasl-mech
		return false
	}
	start := mechs[strings.ToUpper(name)]
	if start == nil {
		c.reply(replyAuthUnknownMech)
		return false
	}
	if c.tracer != nil {
		defer c.traceAuth(strings.ToUpper(name))
	}
	var response []byte // nil: no initial response
	if hasInitial {
		var r *Reply
		if response, r = decodeAuthResponse(initial); r != nil {
			c.reply(r)
			return false
		}
	}
	mech := start(c.newEnvelope())
	k := 0 // the responses so far, for maskLine
	if hasInitial {
		k = 1
	}
	for {
		var challenge []byte
		var identity string
		var done bool
		err := c.call("AuthMechanism", func() (err error) {
			challenge, identity, done, err = mech.Next(c.ctx, response)
			return err
		})
		if err != nil {
			c.authFailed(err)
			return false
		}
		if done {
			c.authIdentity = identity
			c.reply(replyAuthOK)
			c.logInfo("authenticated", "mechanism", strings.ToUpper(name))
			return true
		}
		// RFC 4954 4: "334" SP [base64]; the response is one line.
		c.reply(&Reply{Code: 334, Text: base64.StdEncoding.EncodeToString(challenge)})
		k++
		var r *Reply
		if response, r = c.readAuthResponse(strings.ToUpper(name), k); r != nil {
			if c.state != stateDone {
				c.reply(r)
			}
			return false
		}
	}
}

// traceAuth reports the end of an AUTH exchange with mechanism mech.
func (c *conn) traceAuth(mech string) {
	c.trace(&TraceEvent{Kind: TraceAuth, Mechanism: mech, Identity: c.authIdentity})
}

// authFailed refuses an AUTH exchange with the mechanism's error, and
// ends the session after MaxAuthFailures of them.
func (c *conn) authFailed(err error) {
	c.authFailures++
	c.reply(c.replyFor("AuthMechanism", err))
	if limit := limitOf(c.srv.MaxAuthFailures, DefaultMaxAuthFailures); limit > 0 && c.authFailures >= limit {
		c.replyAndClose(replyAuthFailures)
	}
}

// readAuthResponse reads and decodes the client's k-th response in an
// exchange of mechanism mech, within CommandTimeout. It returns the reply
// that ends the exchange instead when the line breaks a rule, and ends the
// session when the read fails.
func (c *conn) readAuthResponse(mech string, k int) ([]byte, *Reply) {
	c.in.setDeadline(deadlineIn(limitOf(c.srv.CommandTimeout, DefaultCommandTimeout)), 0, false)
	line, bad, err := c.readLine(maxAuthLine)
	if c.tracer != nil && len(c.raw) > 0 {
		c.traceOctets(TraceResponse, maskLine(c.raw, 0, mech, k))
	}
	switch {
	case err != nil:
		c.readFailed(err)
		return nil, replyAuthCancelled // not sent: the session is over
	case bad == replyCommandTooLong:
		return nil, replyAuthLineTooLong
	case bad != nil:
		return nil, bad
	}
	return decodeAuthResponse(string(line))
}

// MaskedSecret stands for a secret in the AUTH exchanges that a trace
// shows (see [Server.Trace]): a PLAIN response's password, a LOGIN
// password, any other mechanism's whole response. The masked response is
// still valid base64, so a recorded session replays against a server that
// takes MaskedSecret as the password.
const MaskedSecret = "********"

// maskLine returns raw, a line of an AUTH exchange as received, with its
// response, from offset start to the line end, masked: response k, from
// 1, of mechanism mech. "*" (cancel) and "=" (empty) hide nothing, nor
// does a LOGIN user name; a response that is not base64 is masked whole.
func maskLine(raw []byte, start int, mech string, k int) []byte {
	end := len(raw)
	for end > start && (raw[end-1] == '\n' || raw[end-1] == '\r') {
		end--
	}
	text := string(raw[start:end])
	b64 := base64.StdEncoding
	masked := b64.EncodeToString([]byte(MaskedSecret))
	decoded, err := b64.Strict().DecodeString(text)
	switch {
	case text == "*" || text == "=" || err == nil && mech == "LOGIN" && k == 1:
		masked = text
	case err != nil:
		masked = MaskedSecret
	case mech == "PLAIN" && bytes.Count(decoded, []byte{0}) == 2:
		// RFC 4616 2: authzid NUL authcid NUL passwd; the names stay.
		names := decoded[:bytes.LastIndexByte(decoded, 0)+1]
		masked = b64.EncodeToString(append(names, MaskedSecret...))
	}
	return append(append(append([]byte(nil), raw[:start]...), masked...), raw[end:]...)
}

// maskAuthCommand returns raw, an AUTH command line as received, with its
// initial response masked (see maskLine).
func maskAuthCommand(raw []byte) []byte {
	_, rest, _ := bytes.Cut(raw, []byte(" "))
	mech, _, ok := bytes.Cut(rest, []byte(" "))
	if !ok {
		return raw // no initial response
	}
	return maskLine(raw, len(raw)-len(rest)+len(mech)+1, strings.ToUpper(string(mech)), 1)
}

// decodeAuthResponse decodes a client response: "*" cancels (RFC 4954 4),
// "=" is an empty initial response, anything else is base64.
func decodeAuthResponse(s string) ([]byte, *Reply) {
	switch s {
	case "*":
		return nil, replyAuthCancelled
	case "=":
		return []byte{}, nil
	}
	// Canonical base64 only; encoding/base64 skips CR and LF, which a
	// response cannot hold.
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil || strings.ContainsAny(s, "\r\n") {
		return nil, replyAuthBadBase64
	}
	return b, nil
}

// authOffered reports whether AUTH is offered now: only over TLS unless
// AllowInsecureAuth is set, so that a password is never sent in the clear
// (RFC 4616 3: PLAIN SHOULD NOT be offered without TLS; LOGIN is no
// safer).
func (c *conn) authOffered() bool {
	return c.tls != nil || c.srv.AllowInsecureAuth
}

// authMechanisms returns the mechanisms offered: PLAIN and LOGIN when
// Authenticate is set, and AuthMechanisms.
func (srv *Server) authMechanisms() map[string]func(*Envelope) AuthMechanism {
	if srv.Authenticate == nil {
		return srv.AuthMechanisms
	}
	m := map[string]func(*Envelope) AuthMechanism{
		"PLAIN": func(env *Envelope) AuthMechanism { return &plainAuth{srv: srv, env: env} },
		"LOGIN": func(env *Envelope) AuthMechanism { return &loginAuth{srv: srv, env: env} },
	}
	for name, start := range srv.AuthMechanisms {
		m[name] = start
	}
	return m
}

// authNames returns the names of the mechanisms for the EHLO reply, sorted
// so that the reply is the same each time.
func (srv *Server) authNames() string {
	var names []string
	for name := range srv.authMechanisms() {
		names = append(names, name)
	}
	sort.Strings(names)
	return strings.Join(names, " ")
}

// plainAuth is the PLAIN mechanism (RFC 4616): one message,
// authzid NUL authcid NUL passwd.
type plainAuth struct {
	srv *Server
	env *Envelope
}

func (a *plainAuth) Next(ctx context.Context, response []byte) ([]byte, string, bool, error) {
	if response == nil {
		return nil, "", false, nil // RFC 4954 4: an empty challenge asks for it
	}
	parts := bytes.Split(response, []byte{0})
	if len(parts) != 3 || len(parts[1]) == 0 {
		return nil, "", true, replyAuthBadSyntax
	}
	identity, username, password := string(parts[0]), string(parts[1]), string(parts[2])
	if err := a.srv.Authenticate(ctx, a.env, identity, username, password); err != nil {
		return nil, "", true, err
	}
	return nil, orString(identity, username), true, nil
}

// loginAuth is the LOGIN mechanism (draft-murchison-sasl-login): the
// username, then the password, each asked for with a text prompt. An
// initial response is taken as the username.
type loginAuth struct {
	srv      *Server
	env      *Envelope
	step     int
	username string
}

func (a *loginAuth) Next(ctx context.Context, response []byte) ([]byte, string, bool, error) {
	switch {
	case a.step == 0 && response == nil:
		a.step = 1
		return []byte("Username:"), "", false, nil
	case a.step <= 1:
		a.username = string(response)
		a.step = 2
		return []byte("Password:"), "", false, nil
	}
	if err := a.srv.Authenticate(ctx, a.env, "", a.username, string(response)); err != nil {
		return nil, "", true, err
	}
	return nil, a.username, true, nil
}
