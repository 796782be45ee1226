package main

import (
	"bytes"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"smtpd/internal/transcript"
	"smtpd/smtpd"
)

// -record DIR writes each session into DIR as a transcript of the
// conformance suite (conformance/testdata/README.md), so that a real
// client's session can be replayed against the library by
// "go test ./conformance/..." or against any server by smtpconform.
//
// Like -v, the recorder follows the library's trace events (Server.Trace):
// the octets of each command, response, content and reply in the clear, a
// starttls event where TLS started (for implicit TLS, "tls: implicit" in
// the header). The file is written when the session ends, by
// internal/transcript: the client's bytes exactly,
// each reply as its code and enhanced code, a delivery section per
// message accepted (the message as the client sent it, without the
// Received field this program adds), and the server's configuration in
// the header. AUTH passwords never reach the file: the library's events
// hold smtpd.MaskedSecret instead, internal/transcript replaces a password
// the server refused by another wrong one, and the header says
// "auth: USER:********" so that the replay authenticates with it.

// recordPassword is the password of a recorded AUTH exchange.
const recordPassword = smtpd.MaskedSecret

// recorder writes the transcripts of the sessions it wraps into dir.
type recorder struct {
	dir    string
	header []transcript.Field // the server's configuration, for every file
	tls    bool               // STARTTLS is offered: "tls: starttls"
	auth   bool               // AUTH is offered: "auth: USER:********"
	lmtp   bool
	log    *slog.Logger
	seq    atomic.Int64
}

// newRecorder checks that dir can hold the transcripts (creating it if
// missing), so that a typo stops the program before it listens, and
// returns the recorder of the sessions cfg describes.
func newRecorder(cfg *config, tlsOn, authOn bool, log *slog.Logger) (*recorder, error) {
	if err := os.MkdirAll(cfg.record, 0o755); err != nil {
		return nil, fmt.Errorf("-record: %v", err)
	}
	f, err := os.CreateTemp(cfg.record, ".smtpd-record-check-*")
	if err != nil {
		return nil, fmt.Errorf("-record %s: cannot write there: %v", cfg.record, err)
	}
	f.Close()
	os.Remove(f.Name())
	return &recorder{dir: cfg.record, header: recordHeader(cfg), tls: tlsOn, auth: authOn,
		lmtp: cfg.lmtp, log: log}, nil
}

// recordHeader is what a replay needs to configure its server as cfg
// configures this one: the header keys of conformance/testdata/README.md.
// Settings that do not change any reply of a session (timeouts, the
// connection limit) are left out; so are the policy flags (-deny-*,
// -allow-hosts, -accept-domains), which the format cannot say: a session
// they refused replays with other replies.
//
// A transcript keeps only the codes of the replies, so the host name and
// the banner change nothing in a replay: the host name is written all the
// same unless it is the runner's default, mx.test, and the banner not at
// all. Every config key makes smtpconform skip the case against a server
// on the network, so a session recorded with "-hostname mx.test" and no
// limits runs there too.
func recordHeader(cfg *config) []transcript.Field {
	var h []transcript.Field
	add := func(k, v string) { h = append(h, transcript.Field{Key: k, Value: v}) }
	if cfg.hostname != "mx.test" {
		add("hostname", cfg.hostname)
	}
	if cfg.lmtp {
		add("lmtp", "yes")
	}
	if cfg.maxSize != smtpd.DefaultMaxMessageBytes {
		add("max-message-bytes", strconv.FormatInt(cfg.maxSize, 10))
	}
	if cfg.maxRecipients != smtpd.DefaultMaxRecipients {
		add("max-recipients", strconv.Itoa(cfg.maxRecipients))
	}
	if cfg.authInsecure {
		add("auth-insecure", "yes")
	}
	if cfg.authRequired {
		add("require-auth", "yes")
	}
	if !cfg.pipeliningSync {
		add("pipelining-sync", "off")
	}
	if cfg.greetDelay > 0 {
		add("greet-delay", cfg.greetDelay.String())
	}
	if cfg.proxyProtocol {
		var p []string
		for _, n := range cfg.proxyTrusted {
			p = append(p, n.String())
		}
		add("proxy-trusted", strings.Join(p, " "))
	}
	return h
}

// trace is the recorder's part of the server's Trace.
func (r *recorder) trace(remote, _ net.Addr) func(*smtpd.TraceEvent) {
	s := &recSession{r: r, remote: remote.String(), start: time.Now()}
	return s.event
}

// recSession is one session being recorded.
type recSession struct {
	r      *recorder
	remote string
	start  time.Time

	chunks   []transcript.Chunk
	replies  []byte // replies queued and not yet in chunks
	implicit bool
	eof      bool // the client closed its side first
}

// event records one event of the session. The client's octets go into a
// chunk of their own once a reply has come between them and the octets
// before, unless the client pipelined: the server sends its queued replies
// when it next waits for the client, so a pipelined command was sent
// before the replies to the ones before it.
func (s *recSession) event(ev *smtpd.TraceEvent) {
	switch ev.Kind {
	case smtpd.TraceProxy, smtpd.TraceCommand, smtpd.TraceResponse, smtpd.TraceContent, smtpd.TraceInput:
		last := len(s.chunks) - 1
		if len(s.replies) == 0 && last >= 0 && s.chunks[last].FromClient || ev.Pipelined {
			if last < 0 || !s.chunks[last].FromClient {
				s.chunks = append(s.chunks, transcript.Chunk{FromClient: true})
				last = len(s.chunks) - 1
			}
			s.chunks[last].Data = append(s.chunks[last].Data, ev.Data...)
			return
		}
		s.flushReplies()
		s.chunks = append(s.chunks, transcript.Chunk{FromClient: true, Data: bytes.Clone(ev.Data)})
	case smtpd.TraceReply:
		s.replies = append(s.replies, ev.Data...)
	case smtpd.TraceTLS:
		s.flushReplies()
		if ev.Implicit {
			// The format's implicit-TLS case starts with the
			// handshake: a PROXY header before it is left out.
			s.implicit, s.chunks = true, nil
			return
		}
		s.chunks = append(s.chunks, transcript.Chunk{StartTLS: true})
	case smtpd.TraceEnd:
		s.flushReplies()
		s.eof = clientClosed(ev.Err)
		s.finish()
	}
}

func (s *recSession) flushReplies() {
	if len(s.replies) > 0 {
		s.chunks = append(s.chunks, transcript.Chunk{Data: s.replies})
		s.replies = nil
	}
}

// finish writes the session's transcript.
func (s *recSession) finish() {
	r := s.r
	chunks, implicit, eof := s.chunks, s.implicit, s.eof
	if len(chunks) == 0 {
		return // nothing said: a port scan, a refused handshake
	}

	n := r.seq.Add(1)
	stamp := s.start.UTC().Format("20060102T150405Z")
	name := fmt.Sprintf("%s-%04d-%s.txt", stamp, n, fileSafe(s.remote))
	t := transcript.FromRecording(name, chunks, transcript.RecordOptions{
		LMTP: r.lmtp, TLS: true, ImplicitTLS: implicit, Password: recordPassword,
	})
	t.Comment = fmt.Sprintf("A session of %s recorded by smtpd -record at %s; replace this line with what it checks.",
		s.remote, s.start.UTC().Format(time.RFC3339))
	t.Ref = "recorded session; name the RFC section it exercises"
	header := append([]transcript.Field(nil), r.header...)
	switch {
	case implicit:
		header = append(header, transcript.Field{Key: "tls", Value: "implicit"})
	case r.tls:
		header = append(header, transcript.Field{Key: "tls", Value: "starttls"})
	}
	if _, ok := t.Get("auth"); r.auth && !ok {
		// Nobody authenticated; the server offered AUTH all the same.
		header = append(header, transcript.Field{Key: "auth", Value: "user:" + recordPassword})
	}
	t.Header = append(header, t.Header...)
	if eof {
		t.Steps = append(t.Steps, transcript.Step{Kind: transcript.Close})
	}
	t.Steps = append(t.Steps, transcript.Step{Kind: transcript.Closed, Duration: 2 * time.Second})

	path := filepath.Join(r.dir, name)
	if err := writeTranscript(path, t); err != nil {
		r.log.Error("recording the session failed", "remote", s.remote, "error", err)
		return
	}
	r.log.Debug("session recorded", "remote", s.remote, "file", path)
}

// writeTranscript writes t to path through a temporary file, so that a
// reader of the directory never sees half a transcript.
func writeTranscript(path string, t *transcript.Transcript) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".recording-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if err := transcript.Write(f, t); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// fileSafe turns an address into part of a file name: "127.0.0.1:5000"
// into "127.0.0.1-5000", "[::1]:5000" into "--1--5000".
func fileSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '.' {
			return r
		}
		return '-'
	}, s)
}
