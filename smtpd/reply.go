package smtpd

import (
	"strconv"
)

// Reply is an SMTP reply: a three-digit reply code (RFC 5321 4.2), an
// optional enhanced status code (RFC 3463) and one line of text.
//
// Reply is an error, so that a callback can refuse with exactly the reply it
// wants:
//
//	return &smtpd.Reply{Code: 550, Enhanced: "5.7.1", Text: "relaying denied"}
//
// A callback error that is not a *Reply (nor wraps one, see errors.As) is
// never shown to the client: it is logged and answered with a fixed
// "451 4.3.0" reply, so internal details do not leak onto the wire.
type Reply struct {
	// Code is the reply code, 200 to 599. Codes outside that range are
	// sent as 451.
	Code int

	// Enhanced is the enhanced status code "class.subject.detail" of
	// RFC 3463, such as "5.1.1". It is sent only to clients that greeted
	// with EHLO (RFC 2034). When empty, the server sends "X.0.0" with the
	// class of Code. When its class does not match Code's first digit it is
	// replaced the same way.
	Enhanced string

	// Text is the human-readable part. It is one line: CR, LF and other
	// control characters are sent as spaces, so a callback can never inject
	// a further reply line (compare go-smtp issue #275).
	Text string
}

// Error returns the reply as it would be sent to an ESMTP client, without
// the line end.
func (r *Reply) Error() string {
	return string(r.appendLine(nil, true, ' '))
}

// Temporary reports whether the reply is a transient negative completion
// (4yz, RFC 5321 4.2.1): the client may try again later.
func (r *Reply) Temporary() bool { return r.code()/100 == 4 }

// code returns Code, or 451 when Code is not a valid SMTP reply code.
func (r *Reply) code() int {
	if r.Code < 200 || r.Code > 599 {
		return 451
	}
	return r.Code
}

// enhanced returns the enhanced status code to send with r: Enhanced when it
// is well-formed and of the same class as the reply code, "X.0.0" otherwise
// (RFC 3463 2: the class must match the reply code's first digit).
func (r *Reply) enhanced() string {
	class := byte('0' + r.code()/100)
	if validEnhanced(r.Enhanced) && r.Enhanced[0] == class {
		return r.Enhanced
	}
	return string(class) + ".0.0"
}

// validEnhanced reports whether s is class "." subject "." detail with
// class 2, 4 or 5, subject 1 to 3 digits and detail 1 to 3 digits
// (RFC 3463 2).
func validEnhanced(s string) bool {
	if len(s) < 5 || (s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.' {
		return false
	}
	// Two runs of 1 to 3 digits, separated by one dot. Scanned by hand:
	// this runs for every reply.
	digits, dots := 0, 0
	for i := 2; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
			digits++
		case c == '.' && digits > 0 && dots == 0:
			dots, digits = 1, 0
			continue
		default:
			return false
		}
		if digits > 3 {
			return false
		}
	}
	return dots == 1 && digits > 0
}

// appendLine appends one reply line to b without its CRLF: the code, sep
// (' ' for the last line of a reply, '-' for the others, RFC 5321 4.2.1),
// the enhanced code when esc is set, and the text with control characters
// replaced by spaces.
func (r *Reply) appendLine(b []byte, esc bool, sep byte) []byte {
	b = strconv.AppendInt(b, int64(r.code()), 10)
	b = append(b, sep)
	// RFC 2034 3: enhanced codes go on 2yz, 4yz and 5yz replies only.
	if esc && r.code()/100 != 3 {
		b = append(b, r.enhanced()...)
		if r.Text != "" {
			b = append(b, ' ')
		}
	}
	return appendText(b, r.Text)
}

// appendText appends s with every control character (CR and LF among them)
// replaced by a space: reply text is one line of printable characters.
func appendText(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < ' ' || c == 0x7f {
			c = ' '
		}
		b = append(b, c)
	}
	return b
}

// Replies the server sends on its own. Callbacks may return them too.
var (
	// ErrMessageTooBig is what the message reader returns, and the client
	// is told, when the message exceeds [Server.MaxMessageBytes]
	// (RFC 1870 6, RFC 5321 4.5.3.1.10 "552 Too much mail data").
	ErrMessageTooBig = &Reply{Code: 552, Enhanced: "5.3.4", Text: "Message exceeds the maximum message size"}

	// ErrLineTooLong is what the message reader returns when a line of
	// text exceeds [Server.MaxLineLength] (RFC 5321 4.5.3.1.6 and
	// 4.5.3.1.10 "500 Line too long").
	ErrLineTooLong = &Reply{Code: 500, Enhanced: "5.5.2", Text: "Line too long"}

	// ErrBareLineEnd is what the message reader returns when the message
	// holds a CR not followed by LF or an LF not preceded by CR, unless
	// [Server.AcceptBareLineEnds] is set. RFC 5321 2.3.8 allows CR and LF
	// only together; treating them otherwise is what SMTP smuggling
	// exploits.
	ErrBareLineEnd = &Reply{Code: 550, Enhanced: "5.5.2", Text: "Bare CR or LF in message; lines must end with CRLF (RFC 5321 2.3.8)"}
)

// Fixed replies. Those that name the server's host name are built per
// session.
var (
	replyOK                = &Reply{Code: 250, Enhanced: "2.0.0", Text: "OK"}
	replyInternal          = &Reply{Code: 451, Enhanced: "4.3.0", Text: "Requested action aborted: local error in processing"}
	replyBadSequence       = &Reply{Code: 503, Enhanced: "5.5.1", Text: "Bad sequence of commands"}
	replyUnrecognized      = &Reply{Code: 500, Enhanced: "5.5.2", Text: "Syntax error, command unrecognized"}
	replyNotImplemented    = &Reply{Code: 502, Enhanced: "5.5.1", Text: "Command not implemented"}
	replyNoArgument        = &Reply{Code: 501, Enhanced: "5.5.4", Text: "Syntax error: no arguments allowed"}
	replyCommandTooLong    = &Reply{Code: 500, Enhanced: "5.5.2", Text: "Line too long"}
	replyCommandBareEnd    = &Reply{Code: 500, Enhanced: "5.5.2", Text: "Bare CR or LF in command; lines must end with CRLF (RFC 5321 2.3.8)"}
	replyNoValidRecipients = &Reply{Code: 554, Enhanced: "5.5.1", Text: "No valid recipients"}
	replyTooManyRecipients = &Reply{Code: 452, Enhanced: "4.5.3", Text: "Too many recipients"}
	replyCannotVerify      = &Reply{Code: 252, Enhanced: "2.1.5", Text: "Cannot VRFY user, but will accept message and attempt delivery"}
	replyStartData         = &Reply{Code: 354, Text: "Start mail input; end with <CRLF>.<CRLF>"}
	replyTimeout           = &Reply{Code: 421, Enhanced: "4.4.2", Text: "Timeout, closing connection"}
	replyTooManyErrors     = &Reply{Code: 421, Enhanced: "4.7.0", Text: "Too many errors, closing connection"}
	replyTooManyConns      = &Reply{Code: 421, Enhanced: "4.3.2", Text: "Too many connections, try again later"}
	replyTooManyFromIP     = &Reply{Code: 421, Enhanced: "4.7.0", Text: "Too many connections from your address, try again later"}
	replyShuttingDown      = &Reply{Code: 421, Enhanced: "4.3.2", Text: "Service shutting down, closing connection"}
	// RFC 2920 3.1 and RFC 5321 4.3.1; the wording is Postfix's and Exim's.
	replyUnsynchronized = &Reply{Code: 554, Enhanced: "5.5.0", Text: "SMTP protocol synchronization error: input sent before the reply, closing connection"}
	replyPregreet       = &Reply{Code: 554, Text: "SMTP protocol synchronization error: input sent before the greeting, closing connection"}
	replyNotSMTP        = &Reply{Code: 554, Enhanced: "5.5.1", Text: "Not an SMTP command, closing connection"}
)

func orReply(r, def *Reply) *Reply {
	if r != nil {
		return r
	}
	return def
}

// reply queues a reply. It is sent when the server next waits for the
// client (connReader.Read), so the replies to a pipelined group of commands
// leave in one write (RFC 2920 3.2).
func (c *conn) reply(r *Reply) { c.replyWith(r, "") }

// replyWith is reply with more text after r's, when more is not empty: a
// value known only now (replyQueued's message ID), without a Reply made
// for it.
func (c *conn) replyWith(r *Reply, more string) {
	if isProtocolError(r.code()) {
		c.errors++
	}
	c.out = r.appendLine(c.out[:0], c.esmtp, ' ')
	if more != "" {
		c.out = append(c.out, ' ')
		c.out = appendText(c.out, more)
	}
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
		c.trace(&TraceEvent{Kind: TraceReply, Data: b, Code: code})
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
