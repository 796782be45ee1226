package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"smtpd/smtpd"
)

// A store keeps messages: a Maildir, an mbox, a command, standard output,
// or nothing (-discard).
//
// store reads the message from msg: the envelope header (Return-Path,
// Delivered-To, see envelopeHeader), the library's Received field and the
// message as received, with CRLF line ends. It returns nil only once the
// message is durably where it belongs, since the client gets 250 then
// (RFC 5321 4.2.5). When msg fails (the client broke a limit or the
// connection), or store fails, nothing may be left behind: a message is
// either acknowledged and stored, or neither. It returns where the message
// went, for the log.
type store interface {
	store(ctx context.Context, env *smtpd.Envelope, msg io.Reader) (where string, err error)
}

// openStore returns the store cfg asks for, having checked that it can
// work (the directory exists or was made, the file can be opened), so that
// a mistake stops the program before it listens.
func openStore(cfg *config) (store, error) {
	switch {
	case cfg.maildir != "":
		return openMaildir(cfg.maildir)
	case cfg.mbox != "":
		return openMbox(cfg.mbox)
	case cfg.execCmd != "":
		return &execStore{command: cfg.execCmd}, nil
	case cfg.discard:
		return discardStore{}, nil
	}
	return &printStore{w: os.Stdout}, nil
}

// deliverer is the server's Handler: it puts the envelope header in front
// of the message, hands both to the store, logs one line per message, and
// counts deliveries in flight so that the program does not exit in the
// middle of one.
type deliverer struct {
	store    store
	log      *slog.Logger
	inFlight inFlight
	// inbox (-http) learns of each message stored, before the client
	// gets its 250, so that the message is in the inbox by then; nil
	// without -http.
	inbox *inbox
}

// errStoreFailed is the reply to a store's internal error; the error
// itself goes to the log, never to the client.
var errStoreFailed = &smtpd.Reply{Code: 451, Enhanced: "4.3.0", Text: "Temporary failure storing the message; try again later"}

func (d *deliverer) ServeSMTP(ctx context.Context, env *smtpd.Envelope, msg io.Reader) error {
	if !d.inFlight.begin() {
		return errStoreFailed // the program is exiting
	}
	defer d.inFlight.end()

	start := time.Now()
	cr := &countingReader{r: msg}
	var r io.Reader = &headedReader{header: envelopeHeader(env), r: cr}
	var kept *keptCopy
	if d.inbox != nil && d.inbox.wantsContent() {
		kept = &keptCopy{}
		r = io.TeeReader(r, kept)
	}
	where, err := d.store.store(ctx, env, r)
	if err == nil && d.inbox != nil {
		d.inbox.stored(env, where, kept.bytes())
	}

	result := "250 stored"
	level := slog.LevelInfo
	var reply *smtpd.Reply
	switch {
	case err == nil:
	case cr.err != nil:
		// The message did not arrive whole: it broke a limit (the reader
		// returns the library's reply) or the client went away. The
		// library answers for it; the store has kept nothing.
		result = "not received: " + cr.err.Error()
		err = cr.err
	case errors.As(err, &reply):
		result = reply.Error()
	default:
		// The store failed: the client is told to try again later, the
		// reason is for the log only.
		level = slog.LevelError
		result = errStoreFailed.Error()
		where = err.Error()
		err = errStoreFailed
	}
	if d.log != nil && d.log.Enabled(ctx, level) {
		d.logDelivery(ctx, level, env, cr.n, result, where, time.Since(start))
	}
	return err
}

// logDelivery logs one delivery. A function of its own, so that
// ServeSMTP, which runs for every message, does not reserve the log
// record's arguments on its stack.
func (d *deliverer) logDelivery(ctx context.Context, level slog.Level, env *smtpd.Envelope, size int64, result, where string, took time.Duration) {
	d.log.Log(ctx, level, "delivery", "id", env.ID, "remote", addrString(env),
		"from", "<"+env.ReversePath.String()+">", "to", recipients(env),
		"size", size, "result", result, "where", where,
		"duration", took.Round(time.Millisecond))
}

// inFlight counts deliveries under way. Unlike a sync.WaitGroup it may
// see a delivery begin while the program waits for the last to end (the
// server's Close does not wait for its sessions); such a delivery is
// refused instead.
type inFlight struct {
	mu      sync.Mutex
	cond    *sync.Cond
	n       int
	closing bool
}

func (f *inFlight) begin() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closing {
		return false
	}
	f.n++
	return true
}

func (f *inFlight) end() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n--
	if f.n == 0 && f.cond != nil {
		f.cond.Broadcast()
	}
}

// wait refuses new deliveries and waits for those under way to end.
func (f *inFlight) wait() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closing = true
	if f.cond == nil {
		f.cond = sync.NewCond(&f.mu)
	}
	for f.n > 0 {
		f.cond.Wait()
	}
}

func addrString(env *smtpd.Envelope) string {
	if env.RemoteAddr == nil {
		return ""
	}
	return env.RemoteAddr.String()
}

// recipients returns the forward-paths of env in angle brackets, separated
// by spaces.
func recipients(env *smtpd.Envelope) string {
	s := make([]string, len(env.Recipients))
	for i, r := range env.Recipients {
		s[i] = "<" + r.ForwardPath.String() + ">"
	}
	return strings.Join(s, " ")
}

// countingReader counts the message's octets for the log line: the
// Received field and the content as received, after dot-unstuffing.
// It also keeps the reader's error other than io.EOF, which tells a message
// that did not arrive from a store that failed.
// headedReader reads header, then r. Unlike io.MultiReader it has no
// WriteTo, whose 32 KiB buffer io.Copy would allocate for every message.
type headedReader struct {
	header []byte
	r      io.Reader
}

func (h *headedReader) Read(p []byte) (int, error) {
	if len(h.header) > 0 {
		n := copy(p, h.header)
		h.header = h.header[n:]
		return n, nil
	}
	return h.r.Read(p)
}

// keptCopy copies what the store reads of a message, for an inbox that
// keeps messages in memory: up to maxKeptMessage octets, past which it
// keeps nothing.
type keptCopy struct {
	b    bytes.Buffer
	over bool
}

func (k *keptCopy) Write(p []byte) (int, error) {
	switch {
	case k.over:
	case k.b.Len()+len(p) > maxKeptMessage:
		k.over, k.b = true, bytes.Buffer{}
	default:
		k.b.Write(p)
	}
	return len(p), nil
}

// bytes returns the copy, nil when there is none or it was too large.
func (k *keptCopy) bytes() []byte {
	if k == nil || k.over {
		return nil
	}
	return k.b.Bytes()
}

type countingReader struct {
	r   io.Reader
	n   int64
	err error
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if err != nil && err != io.EOF {
		c.err = err
	}
	return n, err
}

// envelopeHeader returns the fields that record the envelope in the stored
// message, as a delivery agent writes them (RFC 5321 4.4 for Return-Path;
// Delivered-To is the Postfix and qmail convention, one per recipient), with
// CRLF line ends like the message that follows.
func envelopeHeader(env *smtpd.Envelope) []byte {
	// One allocation for most messages (bytes.Buffer's growth and the
	// concatenations were 1.5% of the server's CPU with 1 KiB messages
	// and -discard): 80 octets a field hold most addresses.
	b := make([]byte, 0, 80*(1+len(env.Recipients)))
	b = appendPathField(b, "Return-Path", env.ReversePath)
	for _, r := range env.Recipients {
		b = appendPathField(b, "Delivered-To", r.ForwardPath)
	}
	return b
}

// appendPathField appends the field "name: <path>" and its CRLF.
func appendPathField(b []byte, name string, p smtpd.Path) []byte {
	b = append(b, name...)
	b = append(b, ": <"...)
	b = append(b, p.LocalPart...)
	if p.Domain != "" { // as Path.String, without making the string
		b = append(b, '@')
		b = append(b, p.Domain...)
	}
	return append(b, ">\r\n"...)
}
