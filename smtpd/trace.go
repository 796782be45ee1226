package smtpd

import (
	"crypto/tls"
	"net"
	"strings"
	"time"
)

// Tracing a session, in the manner of net/http/httptrace: Server.Trace
// returns, for each session, a function that the session calls with each
// of its events as they happen. The events say what the server read and
// wrote, in the clear, and what it made of it: the command line exactly as
// received, the state table's row that decided it, the reply exactly as
// sent, the state change. They are meant to be shown to a person (a log
// line per event, a session view in a web inbox) and to be replayed: the
// octets of the Command, Response, Content, Proxy, Input and Reply events,
// in order, are the session's octets in the clear, but for AUTH secrets,
// which are masked before any event carries them (see maskSecret).
//
// Events are called one at a time, in order, and the session waits for
// each: a slow trace function slows the session. They are called on the
// session's goroutine, but for those the message's reading causes
// (TraceContent, TraceReceived), which come from whichever goroutine the
// Handler reads the message in. Data is only
// valid during the call. A server without Trace pays one nil check per
// place an event could be.
//
// Close's 421 (see [Server.Close]) is written from Close's goroutine, not
// the session's, and is not traced.

// TraceKind says what a [TraceEvent] reports.
type TraceKind uint8

const (
	// TraceProxy: the PROXY protocol header of a trusted proxy
	// ([Server.ProxyTrusted]). Data is the header, Remote and Local the
	// client's addresses it carried (nil for a health check).
	TraceProxy TraceKind = iota + 1
	// TraceTLS: a TLS handshake succeeded. TLS is its state; Implicit
	// says the session began with it (RFC 8314), not with STARTTLS
	// (RFC 3207).
	TraceTLS
	// TraceCommand: a command line. Data is the line as received with
	// its line end, which may be a bare CR or LF inside or at the end
	// of a line the server refused. Verb is the command in upper case
	// ("" when unknown or the line was refused unread, "BDAT LAST" for
	// BDAT with LAST), State the state it was read in. Rule names the
	// state table's row that decided it, RFC that row's section; for a
	// command the table refused (wrong state, a guard) they name that
	// refusal. Pipelined says the line was read with the one before,
	// without waiting for the client: it did not wait for the reply
	// (RFC 2920).
	TraceCommand
	// TraceResponse: a line the client sent in an AUTH exchange
	// (RFC 4954 4), after a 334 challenge. Data is the line, masked.
	TraceResponse
	// TraceReply: a reply queued for the client. Data is the reply as
	// sent, all its lines with their CRLF; Code its reply code.
	TraceReply
	// TraceState: a command moved the session from State to Next. Verb
	// and RFC are the command's and its rule's.
	TraceState
	// TraceAuth: an AUTH exchange ended. Mechanism is the SASL
	// mechanism, Identity who the client authenticated as, "" when it
	// failed or was cancelled.
	TraceAuth
	// TraceMessage: the content of a message begins, after the 354 of
	// DATA or with the first BDAT chunk. Envelope is the transaction's,
	// with its ID, as the Handler will get it.
	TraceMessage
	// TraceContent: message content as received. Data is the octets as
	// the client sent them: dot-stuffed, up to and with the final
	// "." line, for DATA (RFC 5321 4.5.2); the chunk's octets for BDAT,
	// whose command lines are TraceCommand events.
	TraceContent
	// TraceReceived: the Handler has read the message to its end: all
	// its content arrived, and DeliveryTimeout runs. A Handler that
	// returns before the end has no TraceReceived.
	TraceReceived
	// TraceDelivered: the message ended and the Handler returned.
	// Envelope is the message's, Size the octets of content read, Err
	// what refused it: the Handler's error or a limit the message broke;
	// nil when it was accepted. The reply follows as a TraceReply.
	TraceDelivered
	// TraceInput: octets that were read and are neither a line nor
	// content: what a client sent before the greeting (RFC 5321 4.3.1),
	// or a first octet that is not a letter.
	TraceInput
	// TraceEnd: the session is over. Err is why, nil after QUIT.
	TraceEnd
)

var traceKindNames = [...]string{
	TraceProxy: "proxy", TraceTLS: "tls", TraceCommand: "command", TraceResponse: "response",
	TraceReply: "reply", TraceState: "state", TraceAuth: "auth", TraceMessage: "message",
	TraceContent: "content", TraceReceived: "received", TraceDelivered: "delivered", TraceInput: "input", TraceEnd: "end",
}

func (k TraceKind) String() string {
	if int(k) < len(traceKindNames) && traceKindNames[k] != "" {
		return traceKindNames[k]
	}
	return "unknown"
}

// TraceEvent is one event of a session; which fields are set depends on
// Kind (see [TraceKind]).
type TraceEvent struct {
	Kind TraceKind
	Time time.Time

	Data  []byte // octets as received or sent, in the clear
	Verb  string // the command verb, upper case
	State string // the state a command was read in, or left
	Next  string // the state a command led to
	Rule  string // the state table's decision, for a person to read
	RFC   string // where that decision comes from
	Code  int    // a reply's code

	Pipelined bool // TraceCommand: sent without waiting for the previous reply

	Remote, Local net.Addr             // TraceProxy's addresses
	TLS           *tls.ConnectionState // TraceTLS
	Implicit      bool                 // TraceTLS: implicit TLS
	Mechanism     string               // TraceAuth
	Identity      string               // TraceAuth
	Envelope      *Envelope            // TraceMessage, TraceDelivered
	Size          int64                // TraceDelivered
	Err           error                // TraceDelivered, TraceEnd
}

// trace calls the session's trace function with ev, stamped now. ev is a
// pointer, made where the event is, so that the functions that trace do not
// each reserve an event's room on their stack.
func (c *conn) trace(ev *TraceEvent) {
	ev.Time = time.Now()
	c.tracer(ev)
}

// traceOctets reports kind with data, when the session is traced.
func (c *conn) traceOctets(kind TraceKind, data []byte) {
	if c.tracer != nil && len(data) > 0 {
		c.trace(&TraceEvent{Kind: kind, Data: data})
	}
}

// traceCommand reports the command line just read, with the decision
// about it, when the session is traced.
func (c *conn) traceCommand(verb, rule, rfc string) {
	if c.tracer != nil {
		data := c.raw
		if verb == "AUTH" {
			data = maskAuthCommand(data)
		}
		c.trace(&TraceEvent{Kind: TraceCommand, Data: data, Verb: verb, State: c.state.String(), Rule: rule, RFC: rfc,
			Pipelined: c.pipelined})
	}
}

// traceDecision reports a command line with what lookup made of it: its
// rule, the guard that refused it, or find's refusal.
func (c *conn) traceDecision(verb string, r *rule, g *guard, refusal *Reply) {
	switch {
	case g != nil:
		c.traceCommand(verb, "refused: "+g.name, g.rfc)
	case r != nil:
		c.traceCommand(verb, r.note, rfcOf(r.rfc))
	case c.state == stateRefused:
		c.traceCommand(verb, "refused: the session was refused at its greeting; only QUIT", "RFC 5321 3.1")
	case refusal == replyBadSequence:
		c.traceCommand(verb, "refused: not allowed in this state", "RFC 5321 4.1.4")
	case refusal == replyNotImplemented:
		c.traceCommand(verb, "refused: not implemented", "RFC 5321 4.2.4")
	default:
		c.traceCommand(verb, "refused: unknown command", "RFC 5321 4.2.4")
	}
}

// rfcOf returns a rule's RFC section in full: the table writes sections of
// RFC 5321 without the RFC's number.
func rfcOf(s string) string {
	if strings.HasPrefix(s, "RFC ") {
		return s
	}
	return "RFC 5321 " + s
}

// traceBuffered reports the octets buffered and not read as a line: what
// a client sent too early or that is not SMTP.
func (c *conn) traceBuffered() {
	if c.tracer != nil {
		b, _ := c.br.Peek(c.br.Buffered())
		c.traceOctets(TraceInput, b)
	}
}

// firstError is what refused a message, for TraceDelivered: the violation
// of a limit, else the first recipient's error; nil when it was accepted.
func firstError(violation error, results []error) error {
	if violation != nil {
		return violation
	}
	for _, err := range results {
		if err != nil {
			return err
		}
	}
	return nil
}
