package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"smtpd/internal/transcript"
)

// -record DIR writes each session into DIR as a transcript of the
// conformance suite (conformance/testdata/README.md), so that a real
// client's session can be replayed against the library by
// "go test ./conformance/..." or against any server by smtpconform.
//
// Like the -v tap, the recorder is the server's WrapConn: it records the
// bytes at accept, and when the library wraps the TLS layer after a
// handshake it drops the handshake's bytes, marks a starttls event (or,
// for implicit TLS, says "tls: implicit" in the header) and records on
// above TLS, in the clear. The file is written when the session's
// connection closes, by internal/transcript: the client's bytes exactly,
// each reply as its code and enhanced code, a delivery section per
// message accepted (the message as the client sent it, without the
// Received field this program adds), and the server's configuration in
// the header. AUTH passwords never reach the file: they are replaced by
// recordPassword, and the header says "auth: USER:********" so that the
// replay authenticates with it.

// recordPassword replaces every password in a recorded AUTH exchange.
const recordPassword = "********"

// recorder writes the transcripts of the sessions it wraps into dir.
type recorder struct {
	dir    string
	header []transcript.Field // the server's configuration, for every file
	tls    bool               // STARTTLS is offered: "tls: starttls"
	auth   bool               // AUTH is offered: "auth: USER:********"
	lmtp   bool
	log    *slog.Logger
	seq    atomic.Int64

	mu   sync.Mutex
	live map[string]*recSession // by connection addresses, for the TLS layer
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
		lmtp: cfg.lmtp, log: log, live: map[string]*recSession{}}, nil
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
	if cfg.maxSize != defaultMaxSize {
		add("max-message-bytes", strconv.FormatInt(cfg.maxSize, 10))
	}
	if cfg.maxRecipients != defaultMaxRecipients {
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

// wrap is the server's WrapConn (or its part of it, after the -v tap).
func (r *recorder) wrap(c net.Conn) net.Conn {
	key := c.RemoteAddr().String() + " " + c.LocalAddr().String()
	r.mu.Lock()
	s := r.live[key]
	if s == nil {
		s = &recSession{r: r, key: key, remote: c.RemoteAddr().String(), start: time.Now(), tlsMark: -1}
		r.live[key] = s
	}
	r.mu.Unlock()
	if s.raw != nil {
		// The library wraps the TLS layer over the connection: the same
		// TCP connection, so the same addresses.
		return s.raw.overTLS(c)
	}
	s.raw = &recConn{Conn: c, s: s}
	return s.raw
}

// recSession is one session being recorded.
type recSession struct {
	r      *recorder
	key    string
	remote string
	start  time.Time
	raw    *recConn // the layer at accept; only the session's goroutine sets it

	// mu: the session reads and writes from its goroutine, but Shutdown
	// writes its 421 from another.
	mu       sync.Mutex
	chunks   []transcript.Chunk
	tlsMark  int  // where a TLS handshake may have started in chunks, or -1
	inTLS    bool // the raw layer sees only TLS records now
	implicit bool
	eof      bool // the client closed its side first
	closed   bool
	once     sync.Once
}

// recConn records what passes through one layer of a session: the
// connection as accepted, or the TLS layer over it.
type recConn struct {
	net.Conn
	s        *recSession
	tlsLayer bool
}

// overTLS is called on the raw layer when the library has finished a TLS
// handshake over it, with the TLS layer tc to record from now on. The
// handshake's bytes, recorded meanwhile, go: the session is cut where the
// handshake began, and goes on with a starttls event, or, when it began
// with the session (implicit TLS, RFC 8314), with nothing before it.
func (c *recConn) overTLS(tc net.Conn) net.Conn {
	s := c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inTLS = true
	// Whether the server spoke SMTP before: the handshake's own records
	// (RFC 8446 5.1) never start with a digit, a reply always does.
	serverSpoke := false
	for _, ch := range s.chunks {
		serverSpoke = serverSpoke || !ch.FromClient && len(ch.Data) > 0 && '0' <= ch.Data[0] && ch.Data[0] <= '9'
	}
	switch {
	case !serverSpoke:
		// Before the greeting: implicit TLS. A PROXY header before the
		// handshake is left out, since the format's implicit-TLS case
		// starts with the handshake.
		s.implicit, s.chunks = true, nil
	case s.tlsMark >= 0:
		s.chunks = append(s.chunks[:s.tlsMark], transcript.Chunk{StartTLS: true})
	default:
		s.chunks = append(s.chunks, transcript.Chunk{StartTLS: true})
	}
	return &recConn{Conn: tc, s: s, tlsLayer: true}
}

func (c *recConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	s := c.s
	s.mu.Lock()
	if !c.tlsLayer && s.inTLS || s.closed {
		s.mu.Unlock()
		return n, err
	}
	if n > 0 {
		// A TLS handshake record (RFC 8446 5.1: type 22) at the start of
		// the session or right after a 220 reply may be the handshake of
		// implicit TLS or STARTTLS; overTLS will say.
		if !c.tlsLayer && p[0] == 0x16 && (len(s.chunks) == 0 || endsWith220(s.chunks[len(s.chunks)-1])) {
			s.tlsMark = len(s.chunks)
		}
		s.chunks = append(s.chunks, transcript.Chunk{FromClient: true, Data: append([]byte(nil), p[:n]...)})
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) {
		s.eof = true
	}
	s.mu.Unlock()
	return n, err
}

func (c *recConn) Write(p []byte) (int, error) {
	s := c.s
	s.mu.Lock()
	if (c.tlsLayer || !s.inTLS) && !s.closed && len(p) > 0 {
		s.chunks = append(s.chunks, transcript.Chunk{Data: append([]byte(nil), p...)})
	}
	s.mu.Unlock()
	return c.Conn.Write(p)
}

// endsWith220 reports whether ch is the server's and ends with a 220
// reply, which STARTTLS's is (RFC 3207 4); replies pipelined before it may
// come in the same write.
func endsWith220(ch transcript.Chunk) bool {
	if ch.FromClient || !bytes.HasSuffix(ch.Data, []byte("\r\n")) {
		return false
	}
	d := ch.Data[:len(ch.Data)-2]
	return bytes.HasPrefix(d[bytes.LastIndex(d, []byte("\n"))+1:], []byte("220 "))
}

// Close ends the session's recording and writes it. The library closes
// the connection as accepted, under any TLS layer, and only once the
// session is over.
func (c *recConn) Close() error {
	err := c.Conn.Close()
	c.s.once.Do(c.s.finish)
	return err
}

// finish writes the session's transcript.
func (s *recSession) finish() {
	r := s.r
	r.mu.Lock()
	delete(r.live, s.key)
	r.mu.Unlock()
	s.mu.Lock()
	s.closed = true
	chunks := s.chunks
	if !s.inTLS && s.tlsMark >= 0 {
		chunks = chunks[:s.tlsMark] // a handshake that failed: binary noise
	}
	implicit, eof := s.implicit, s.eof
	s.mu.Unlock()
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
