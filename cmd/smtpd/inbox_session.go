package main

import (
	"crypto/tls"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"smtpd/smtpd"
)

// The inbox shows, beside each message, the SMTP session that delivered
// it: every command and reply, as the library's trace events report them
// (Server.Trace), with the state table's decisions. A session's log lives
// as long as a message it delivered is in the index (the entry points to
// it), and not longer: a session that delivered nothing is dropped when
// it ends. The log never holds message content, only its size, and it is
// bounded, since a client may send commands for as long as it likes.
const (
	maxSessionEvents = 2000      // events kept of one session; later ones are counted
	maxSessionText   = 256 << 10 // octets of lines kept of one session
	maxEventText     = 512       // octets of one line kept (RFC 5321 4.5.3.1.4: a command line is at most 512)
)

// sessionEvent is one event of a session, as the session view and the
// API show it.
type sessionEvent struct {
	Elapsed   float64 // milliseconds since the session began
	Kind      string  // the smtpd.TraceKind's name: command, reply, state, tls, ...
	Text      string  `json:",omitempty"` // the line sent or received, CRLF left out
	Verb      string  `json:",omitempty"`
	State     string  `json:",omitempty"` // the state a command was read in
	Next      string  `json:",omitempty"` // the state it led to, when it changed it
	Rule      string  `json:",omitempty"` // the state table's decision
	RFC       string  `json:",omitempty"`
	Code      int     `json:",omitempty"` // a reply's code
	Pipelined bool    `json:",omitempty"`
	TLS       bool    `json:",omitempty"` // the connection was under TLS
	Auth      string  `json:",omitempty"` // who the client had authenticated as
	Size      int64   `json:",omitempty"` // octets of content (never the content itself)
	Message   string  `json:",omitempty"` // the ID of the message this event belongs to
	Err       string  `json:",omitempty"`
	Link      string  `json:",omitempty"` // a command's row in the state table; set by the API
}

// sessionLog is one session's events.
type sessionLog struct {
	mu      sync.Mutex
	start   time.Time
	remote  string
	local   string
	events  []sessionEvent
	dropped int    // events not kept past maxSessionEvents
	text    int    // octets of Text kept
	tls     bool   // TLS has started
	auth    string // the identity AUTH established
	message string // the message being received
	command int    // the index of the last command's event, -1 before one
	ids     []string
	ended   bool
}

// sessionJSON is a session log as the API returns it.
type sessionJSON struct {
	Start   time.Time
	Remote  string
	Local   string
	Ended   bool
	Dropped int `json:",omitempty"`
	Events  []sessionEvent
}

// sessions maps the IDs of the messages being delivered to their
// sessions' logs: the deliverer's hook (inbox.stored) finds the log there.
type sessions struct {
	mu      sync.Mutex
	pending map[string]*sessionLog
}

func newSessions() *sessions { return &sessions{pending: map[string]*sessionLog{}} }

// lookup returns the log of the session delivering message id, or nil.
func (s *sessions) lookup(id string) *sessionLog {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pending[id]
}

func (s *sessions) begin(id string, l *sessionLog) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pending[id] = l
}

func (s *sessions) end(ids ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range ids {
		delete(s.pending, id)
	}
}

// trace is the inbox's part of Server.Trace.
func (in *inbox) trace(remote, local net.Addr) func(*smtpd.TraceEvent) {
	l := &sessionLog{start: time.Now(), remote: addrText(remote), local: addrText(local), command: -1}
	return func(ev *smtpd.TraceEvent) { in.sessions.record(l, ev) }
}

// envID is the ID of the message an event is about.
func envID(ev *smtpd.TraceEvent) string {
	if ev.Envelope == nil {
		return ""
	}
	return ev.Envelope.ID
}

func addrText(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}

// record adds ev to the log l; the messages it begins and ends are
// registered in s.
func (s *sessions) record(l *sessionLog, ev *smtpd.TraceEvent) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch ev.Kind {
	case smtpd.TraceMessage:
		l.message = envID(ev)
		l.ids = append(l.ids, l.message)
		s.begin(l.message, l)
	case smtpd.TraceProxy:
		if ev.Remote != nil {
			l.remote = ev.Remote.String() // the client, not the proxy
		}
	case smtpd.TraceTLS:
		l.tls = true
	case smtpd.TraceAuth:
		l.auth = ev.Identity
	}
	l.add(ev)
	switch ev.Kind {
	case smtpd.TraceDelivered:
		l.message = ""
		s.end(envID(ev))
	case smtpd.TraceEnd:
		l.ended = true
		s.end(l.ids...)
		l.ids = nil
	}
}

// add appends the row for ev, or merges it into the row it completes:
// the state change a command made (which follows the command's reply) goes
// to the command's row, more octets of content to the content's.
func (l *sessionLog) add(ev *smtpd.TraceEvent) {
	last := len(l.events) - 1
	switch {
	case ev.Kind == smtpd.TraceState && l.command >= 0 && l.events[l.command].Verb == ev.Verb && l.events[l.command].Next == "":
		l.events[l.command].Next = ev.Next
		return
	case ev.Kind == smtpd.TraceContent && last >= 0 && l.events[last].Kind == "content":
		l.events[last].Size += int64(len(ev.Data))
		return
	case len(l.events) >= maxSessionEvents:
		l.dropped++
		return
	}
	e := sessionEvent{
		Elapsed: float64(ev.Time.Sub(l.start).Microseconds()) / 1000,
		Kind:    ev.Kind.String(), Verb: ev.Verb, State: ev.State, Rule: ev.Rule, RFC: ev.RFC,
		Code: ev.Code, Pipelined: ev.Pipelined, TLS: l.tls, Auth: l.auth, Message: l.message,
		Text: l.keepText(eventText(ev)),
	}
	switch ev.Kind {
	case smtpd.TraceState:
		e.Next = ev.Next
	case smtpd.TraceContent, smtpd.TraceInput:
		e.Size = int64(len(ev.Data))
	case smtpd.TraceDelivered:
		e.Size, e.Message = ev.Size, envID(ev)
	}
	if ev.Err != nil {
		e.Err = l.keepText(ev.Err.Error())
	}
	if ev.Kind == smtpd.TraceCommand {
		l.command = len(l.events)
	}
	l.events = append(l.events, e)
}

// keepText returns s, within what the log may still hold.
func (l *sessionLog) keepText(s string) string {
	if len(s) > maxEventText {
		s = strings.ToValidUTF8(s[:maxEventText], "") + "…"
	}
	if l.text+len(s) > maxSessionText {
		return "…"
	}
	l.text += len(s)
	return s
}

// eventText is the line an event shows: what was sent or received, with
// the line end left out and other control characters made visible. The
// content of a message is never shown (TraceContent), nor what a client
// sent that was not a line (TraceInput): only their sizes.
func eventText(ev *smtpd.TraceEvent) string {
	switch ev.Kind {
	case smtpd.TraceCommand, smtpd.TraceResponse, smtpd.TraceReply:
		return visible(strings.TrimSuffix(string(ev.Data), "\r\n"))
	case smtpd.TraceProxy:
		if strings.HasPrefix(string(ev.Data), "PROXY ") {
			return visible(strings.TrimSuffix(string(ev.Data), "\r\n"))
		}
		return fmt.Sprintf("[PROXY protocol v2 header, %d octets]", len(ev.Data))
	case smtpd.TraceTLS:
		s := tls.VersionName(ev.TLS.Version) + ", " + tls.CipherSuiteName(ev.TLS.CipherSuite)
		if ev.Implicit {
			s += " (implicit TLS, RFC 8314)"
		}
		return s
	case smtpd.TraceAuth:
		if ev.Identity == "" {
			return ev.Mechanism + ": failed"
		}
		return ev.Mechanism + ": authenticated as " + ev.Identity
	case smtpd.TraceMessage:
		return "message " + envID(ev) + " begins"
	}
	return ""
}

// visible shows CR, LF and other control characters in a line as Go
// escapes, keeping a multi-line reply's line breaks (CRLF) as LF: a bare
// CR or LF in a command is the point of showing it.
func visible(s string) string {
	lines := strings.Split(s, "\r\n")
	for i, line := range lines {
		var b strings.Builder
		for _, r := range strings.ToValidUTF8(line, "\uFFFD") {
			if r < 0x20 && r != '\t' || r == 0x7f {
				fmt.Fprintf(&b, "\\x%02x", r)
				continue
			}
			b.WriteRune(r)
		}
		lines[i] = b.String()
	}
	return strings.Join(lines, "\n")
}

// snapshot copies the log for a reader.
func (l *sessionLog) snapshot() sessionJSON {
	l.mu.Lock()
	defer l.mu.Unlock()
	return sessionJSON{Start: l.start, Remote: l.remote, Local: l.local, Ended: l.ended,
		Dropped: l.dropped, Events: append([]sessionEvent(nil), l.events...)}
}

// stateTableLink is the URL of the state table's row that decided a
// command event, "" for other events.
func stateTableLink(ev sessionEvent) string {
	if ev.Kind != "command" || ev.Verb == "" {
		return ""
	}
	return "/state-table#" + theStateDoc().anchor(ev.Verb, ev.Rule)
}
