package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"syscall"

	"smtpd/smtpd"
)

// Tracer is what the library's Server.Trace takes: called as a session
// starts, it returns the function that receives the session's events.
type tracer = func(remote, local net.Addr) func(*smtpd.TraceEvent)

// traceAll returns a Server.Trace that gives each session's events to
// every tracer of ts that wants them, in order; nil when ts has none.
func traceAll(ts ...tracer) tracer {
	var live []tracer
	for _, t := range ts {
		if t != nil {
			live = append(live, t)
		}
	}
	switch len(live) {
	case 0:
		return nil
	case 1:
		return live[0]
	}
	return func(remote, local net.Addr) func(*smtpd.TraceEvent) {
		var fs []func(*smtpd.TraceEvent)
		for _, t := range live {
			if f := t(remote, local); f != nil {
				fs = append(fs, f)
			}
		}
		return func(ev *smtpd.TraceEvent) {
			for _, f := range fs {
				f(ev)
			}
		}
	}
}

// -v logs each session as lines at Debug level, from the library's trace
// events: "client" lines and "server" lines, the message content left out
// (its size is logged) and AUTH secrets masked, TLS as it starts. The
// library masks AUTH secrets already; the log hides even the masked
// response, which would only be noise to a reader.

// maxLogLine bounds a logged line; the library refuses longer commands.
const maxLogLine = 1024

// verboseTracer returns the tracer that logs into log.
func verboseTracer(log *slog.Logger) tracer {
	return func(remote, _ net.Addr) func(*smtpd.TraceEvent) {
		v := &verboseSession{log: log.With("remote", remote.String())}
		return v.event
	}
}

// verboseSession logs one session.
type verboseSession struct {
	log     *slog.Logger
	verb    string // the last command's verb
	content int64  // octets of content not logged yet
}

func (v *verboseSession) event(ev *smtpd.TraceEvent) {
	if ev.Kind != smtpd.TraceContent && v.content > 0 {
		// The content ends: DATA's with its end mark, a BDAT chunk's
		// at the next event.
		if v.verb == "DATA" && (ev.Kind == smtpd.TraceReceived || ev.Kind == smtpd.TraceDelivered) {
			v.line("client", "content", strconv.FormatInt(v.content-3, 10)+" octets", "line", ".")
		} else {
			v.line("client", "content", strconv.FormatInt(v.content, 10)+" octets")
		}
		v.content = 0
	}
	switch ev.Kind {
	case smtpd.TraceProxy:
		if bytes.HasPrefix(ev.Data, []byte("PROXY ")) {
			v.text("client", ev.Data)
		} else {
			v.line("client", "line", "[PROXY protocol v2 header]")
		}
	case smtpd.TraceTLS:
		v.line("TLS started", "version", tls.VersionName(ev.TLS.Version), "cipher", tls.CipherSuiteName(ev.TLS.CipherSuite))
	case smtpd.TraceCommand:
		v.verb = ev.Verb
		line := ev.Data
		if ev.Verb == "AUTH" {
			// "AUTH PLAIN ***": the mechanism, not the response.
			if f := bytes.Fields(line); len(f) > 2 {
				line = []byte(string(f[0]) + " " + string(f[1]) + " ***")
			}
		}
		v.text("client", line)
	case smtpd.TraceResponse:
		v.line("client", "line", "***")
	case smtpd.TraceInput:
		v.text("client", ev.Data)
	case smtpd.TraceContent:
		v.content += int64(len(ev.Data))
	case smtpd.TraceReply:
		for _, l := range strings.SplitAfter(string(ev.Data), "\r\n") {
			if l != "" {
				v.text("server", []byte(l))
			}
		}
	}
}

// text logs one line of the session, without its line end.
func (v *verboseSession) text(who string, line []byte) {
	line = bytes.TrimRight(line, "\r\n")
	more := ""
	if len(line) > maxLogLine {
		line, more = line[:maxLogLine], "..."
	}
	v.line(who, "line", string(line)+more)
}

func (v *verboseSession) line(msg string, args ...any) {
	v.log.Log(context.Background(), slog.LevelDebug, msg, args...)
}

// clientClosed reports whether a session ended because the client closed
// the connection or reset it, rather than by QUIT or the server.
func clientClosed(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET)
}
