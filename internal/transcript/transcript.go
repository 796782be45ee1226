// Package transcript reads, writes and replays conformance transcripts:
// small text files, one behaviour each, that say what an SMTP client sends,
// what the server must answer, and what the server's handler must receive.
// The format is defined in full in conformance/testdata/README.md; this
// package is its only implementation.
//
// A transcript is data, not code, so that the same file runs against the
// in-process server (go test ./conformance/...) and against any SMTP server
// on the network (cmd/smtpconform), and so that a recording of a real client
// can be checked in as it is (crypto/tls's testdata is the model).
package transcript

import (
	"regexp"
	"time"
)

// Transcript is one parsed file.
type Transcript struct {
	// Name is the file name, used in every message about the file.
	Name string

	// Comment is the first comment line without its "# ": one sentence
	// saying what the case checks. Ref is the text of the "ref:" line.
	Comment string
	Ref     string

	// Header holds the "key: value" lines that configure the server, in
	// file order. Which keys exist is the business of the runner; the
	// parser refuses any key not in [Keys].
	Header []Field

	// Steps is the session, in order.
	Steps []Step

	// Deliveries are the messages the handler must have received, in
	// order. Empty means no message may be delivered.
	Deliveries []Delivery

	// Uses says which placeholders the file writes (see [Vars]).
	Uses Uses
}

// Field is one header line.
type Field struct {
	Key, Value string
	Line       int
}

// Get returns the value of the last header field named key, and whether
// there is one.
func (t *Transcript) Get(key string) (string, bool) {
	for i := len(t.Header) - 1; i >= 0; i-- {
		if t.Header[i].Key == key {
			return t.Header[i].Value, true
		}
	}
	return "", false
}

// Kind says what a Step does.
type Kind int

const (
	// Send queues Data; queued bytes are written when the runner next
	// waits for the server, or at Segment or Pause.
	Send Kind = iota
	// Expect reads one reply and matches it against Reply.
	Expect
	// Contains and Lacks check the reply read last: some line of it
	// matches Pattern, or none does.
	Contains
	Lacks
	// Segment writes the queued bytes now, in one write of their own.
	Segment
	// Pause writes the queued bytes, then waits Duration.
	Pause
	// Closed: the server must close the connection within Duration,
	// sending nothing more.
	Closed
	// Silent: nothing may arrive from the server for Duration.
	Silent
	// Close: the client closes the connection.
	Close
	// StartTLS: the client runs a TLS handshake here, over the
	// connection as it is, and goes on through TLS.
	StartTLS
	// Shutdown: the runner starts a graceful shutdown of the server
	// (smtpd.Server.Shutdown) and goes on without waiting for its end.
	// Only a runner that owns the server can do it.
	Shutdown
)

var kindNames = [...]string{"send", "expect", "contains", "lacks", "segment", "pause", "closed", "silent", "close", "starttls", "shutdown"}

func (k Kind) String() string { return kindNames[k] }

// Step is one line of the session (or, with a repeat count, several
// identical lines folded into one step).
type Step struct {
	Kind Kind
	Line int

	Data     []byte         // Send: the exact bytes
	Reply    ReplyPattern   // Expect
	Pattern  *regexp.Regexp // Contains, Lacks
	Duration time.Duration  // Pause, Closed, Silent
}

// ReplyPattern is what one reply must look like: one LinePattern per reply
// line. A pattern of one line matches a reply of any number of lines: the
// code must match on every line, the enhanced code and text on the last.
type ReplyPattern struct {
	Lines []LinePattern
	// OrClosed accepts, instead of a matching reply, the server closing
	// the connection, with or without a refusal (4yz or 5yz) just before
	// ("S: 503|closed"): RFC 5321 7.8 lets a server that detects an
	// attack refuse it and hang up. The session then ends there, and the
	// steps after it do not run.
	OrClosed bool
}

// LinePattern matches one reply line.
type LinePattern struct {
	Line int // in the transcript file

	// Codes are the accepted reply codes: three characters each, a digit
	// or "x" for any digit ("250", "5xx").
	Codes []string
	// More is set for a continuation line ("250-"), which must not be
	// the last line of the reply.
	More bool
	// Enhanced, when not empty, is the RFC 3463 code the line must start
	// with; "x" stands for any number in a part ("5.5.x").
	Enhanced string
	// Text, when not nil, must match the rest of the line: after the
	// enhanced code when Enhanced is set, after the code otherwise.
	Text *regexp.Regexp

	orClosed bool // "closed" among the codes: see ReplyPattern.OrClosed
}

// Delivery is one message as the handler must have received it.
type Delivery struct {
	Line int

	// Hello is the client's HELO or EHLO argument; empty means not checked.
	Hello string
	// TLS is "yes" when the message must have come over TLS, "no" when
	// it must not; empty means not checked.
	TLS string
	// Auth is the identity the client must have authenticated as (AUTH,
	// RFC 4954); empty means not checked.
	Auth string
	// Mail is the reverse-path in angle brackets with its parameters,
	// "<a@example.org> BODY=8BITMIME"; parameters are compared as a set.
	Mail string
	// Rcpts are the forward-paths, each with its parameters, in order.
	Rcpts []string
	// Data is the message as the handler read it.
	Data []DataPart
}

// DataPart is a piece of the expected message: exact bytes, or one line
// (up to and including its CRLF) whose text must match Line.
type DataPart struct {
	Exact []byte
	Line  *regexp.Regexp
}
