package conformance

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"smtpd/internal/glob"
	"smtpd/internal/transcript"
	"smtpd/smtpd"
)

// NewServer returns a Server configured by t's header, with a Recorder as
// its Handler. Unless the header says "received: on", the server adds no
// Received field, so that deliveries compare byte for byte: the field holds
// a date, an ID and a port that change on every run. A header key the
// library cannot honour yet (the extension keys) is an error: a case must
// never pass by ignoring what it asks for.
func NewServer(t *transcript.Transcript) (*smtpd.Server, *Recorder, error) {
	rec := &Recorder{}
	srv := &smtpd.Server{Hostname: "mx.test", Handler: rec, DisableReceived: true}
	// ${refused} stands for an address the target refuses; here the
	// runner's server refuses it (after any refuse-recipient line of the
	// header, which wraps this check).
	refused := transcript.DefaultVars.Refused
	srv.CheckRecipient = func(ctx context.Context, env *smtpd.Envelope, r smtpd.Recipient) error {
		if strings.EqualFold(r.ForwardPath.String(), refused) {
			return &smtpd.Reply{Code: 550, Enhanced: "5.1.1", Text: "No such user"}
		}
		return nil
	}
	for _, f := range t.Header {
		if err := configure(srv, rec, f); err != nil {
			return nil, nil, fmt.Errorf("%s:%d: %s: %v", t.Name, f.Line, f.Key, err)
		}
	}
	return srv, rec, nil
}

func configure(srv *smtpd.Server, rec *Recorder, f transcript.Field) error {
	v := f.Value
	ints := map[string]*int{
		"max-recipients": &srv.MaxRecipients, "max-line-length": &srv.MaxLineLength,
		"max-command-length": &srv.MaxCommandLength, "max-local-part": &srv.MaxLocalPart,
		"max-domain": &srv.MaxDomain, "max-path": &srv.MaxPath,
		"max-errors": &srv.MaxErrors, "max-connections": &srv.MaxConnections,
		"max-connections-per-ip": &srv.MaxConnectionsPerIP,
	}
	durations := map[string]*time.Duration{
		"command-timeout": &srv.CommandTimeout, "data-timeout": &srv.DataTimeout,
		"message-timeout": &srv.MessageTimeout, "delivery-timeout": &srv.DeliveryTimeout,
	}
	if p, ok := ints[f.Key]; ok {
		n, err := strconv.Atoi(v)
		*p = n
		return err
	}
	if p, ok := durations[f.Key]; ok {
		d, err := time.ParseDuration(v)
		*p = d
		return err
	}
	switch f.Key {
	case "needs", "level", "profile", "sink":
		// For remote runs; the in-process server offers every extension
		// the suite has cases for, takes every profile and is a sink.
	case "hostname":
		srv.Hostname = v
	case "banner":
		srv.Banner = v
	case "max-message-bytes":
		n, err := strconv.ParseInt(v, 10, 64)
		srv.MaxMessageBytes = n
		return err
	case "received":
		on, err := onOff(v)
		srv.DisableReceived = !on
		return err
	case "accept-bare-line-ends":
		on, err := onOff(v)
		srv.AcceptBareLineEnds = on
		return err
	case "pipelining-sync":
		on, err := onOff(v)
		srv.DisablePipeliningSync = !on
		return err
	case "greet-delay":
		d, err := time.ParseDuration(v)
		srv.GreetingDelay = d
		return err
	case "refuse-connection":
		r, err := parseAnswer(v)
		srv.CheckConnection = func(context.Context, net.Addr) error { return r.err() }
		return err
	case "refuse-hello":
		m, err := parseMatcher(v)
		prev := srv.CheckHello
		srv.CheckHello = func(ctx context.Context, env *smtpd.Envelope) error {
			if m.glob.match(env.Hello) {
				return m.answer.err()
			}
			return chain(prev, ctx, env)
		}
		return err
	case "refuse-sender":
		m, err := parseMatcher(v)
		prev := srv.CheckSender
		srv.CheckSender = func(ctx context.Context, env *smtpd.Envelope) error {
			if m.glob.match(env.ReversePath.String()) {
				return m.answer.err()
			}
			return chain(prev, ctx, env)
		}
		return err
	case "refuse-recipient":
		m, err := parseMatcher(v)
		prev := srv.CheckRecipient
		srv.CheckRecipient = func(ctx context.Context, env *smtpd.Envelope, r smtpd.Recipient) error {
			if m.glob.match(r.ForwardPath.String()) {
				return m.answer.err()
			}
			if prev != nil {
				return prev(ctx, env, r)
			}
			return nil
		}
		return err
	case "verify":
		if v == "off" {
			srv.Verify = nil // the default: 252 to every VRFY
			return nil
		}
		m, err := parseMatcher(v)
		prev := srv.Verify
		srv.Verify = func(ctx context.Context, env *smtpd.Envelope, arg string) error {
			if m.glob.match(arg) {
				return m.answer.err()
			}
			if prev != nil {
				return prev(ctx, env, arg)
			}
			return nil
		}
		return err
	case "expand":
		// "list -> a, b": EXPN list answers the members; other names
		// get an empty list, which the server answers 550.
		if v == "off" {
			srv.Expand = nil // the default: EXPN is not implemented
			return nil
		}
		name, members, ok := strings.Cut(v, "->")
		if !ok {
			return errors.New(`want "NAME -> MEMBER, MEMBER"`)
		}
		g := pattern(strings.TrimSpace(name))
		var list []string
		for _, m := range strings.Split(members, ",") {
			if m = strings.TrimSpace(m); m != "" {
				list = append(list, m)
			}
		}
		prev := srv.Expand
		srv.Expand = func(ctx context.Context, env *smtpd.Envelope, arg string) ([]string, error) {
			if g.match(arg) {
				return list, nil
			}
			if prev != nil {
				return prev(ctx, env, arg)
			}
			return nil, nil
		}
	case "handler":
		a, err := parseAnswer(v)
		rec.answer = a
		return err
	case "tls":
		// starttls and implicit both give the server the runner's
		// certificate; RunLocal serves implicit TLS with ServeTLS.
		switch v {
		case "starttls", "implicit":
			cfg, _, err := testTLS()
			srv.TLSConfig = cfg
			return err
		case "none":
			srv.TLSConfig = nil
		case "no-certificate":
			srv.TLSConfig = &tls.Config{}
		default:
			return fmt.Errorf("want starttls, implicit, none or no-certificate, got %q", v)
		}
	case "tls-handshake-timeout":
		d, err := time.ParseDuration(v)
		srv.TLSHandshakeTimeout = d
		return err
	case "require-tls":
		on, err := onOff(v)
		srv.RequireTLS = on
		return err
	case "auth":
		if v == "none" {
			srv.Authenticate = nil // the default: AUTH not offered, 502
			return nil
		}
		accounts := make(map[string]string)
		for _, up := range strings.Split(v, ",") {
			u, p, ok := strings.Cut(strings.TrimSpace(up), ":")
			if !ok || u == "" {
				return fmt.Errorf("want USER:PASSWORD[,USER:PASSWORD], got %q", v)
			}
			accounts[u] = p
		}
		srv.Authenticate = func(ctx context.Context, env *smtpd.Envelope, identity, username, password string) error {
			if p, ok := accounts[username]; !ok || p != password || identity != "" && identity != username {
				return smtpd.ErrAuthFailed
			}
			return nil
		}
	case "auth-insecure":
		on, err := onOff(v)
		srv.AllowInsecureAuth = on
		return err
	case "require-auth":
		on, err := onOff(v)
		srv.RequireAuth = on
		return err
	case "max-auth-failures":
		n, err := strconv.Atoi(v)
		srv.MaxAuthFailures = n
		return err
	case "lmtp":
		on, err := onOff(v)
		srv.LMTP = on
		return err
	case "lmtp-recipient":
		m, err := parseMatcher(v)
		rec.lmtp = append(rec.lmtp, m)
		return err
	case "proxy-trusted":
		for _, s := range strings.Fields(strings.ReplaceAll(v, ",", " ")) {
			p, err := netip.ParsePrefix(s)
			if err != nil {
				return err
			}
			srv.ProxyTrusted = append(srv.ProxyTrusted, p)
		}
	case "hold-connections":
		// RunLocal's business: connections it opens before the case's.
		_, err := strconv.Atoi(v)
		return err
	default:
		return errors.New("no such server setting")
	}
	return nil
}

func chain(prev func(context.Context, *smtpd.Envelope) error, ctx context.Context, env *smtpd.Envelope) error {
	if prev != nil {
		return prev(ctx, env)
	}
	return nil
}

func onOff(v string) (bool, error) {
	switch v {
	case "on", "true", "yes":
		return true, nil
	case "off", "false", "no":
		return false, nil
	}
	return false, fmt.Errorf("want on or off, got %q", v)
}

// answer is what a configured callback does: return a *smtpd.Reply, a
// plain error (which the server must hide behind 451 4.3.0), or panic
// (which the server must survive).
type answer struct {
	reply *smtpd.Reply
	kind  string // "reply", "error", "panic"
}

func (a answer) err() error {
	switch a.kind {
	case "error":
		return errors.New("internal detail that must not reach the client")
	case "panic":
		panic("conformance: configured panic")
	case "reply":
		return a.reply
	}
	return nil
}

// parseAnswer parses "CODE [ENHANCED] [text]", "error", "panic" or "ok".
func parseAnswer(v string) (answer, error) {
	switch v {
	case "error", "panic":
		return answer{kind: v}, nil
	case "ok":
		return answer{}, nil
	}
	code, rest, _ := strings.Cut(v, " ")
	n, err := strconv.Atoi(code)
	if err != nil {
		return answer{}, fmt.Errorf("want CODE [ENHANCED] [TEXT], error, panic or ok; got %q", v)
	}
	r := &smtpd.Reply{Code: n}
	if word, after, _ := strings.Cut(rest, " "); strings.Count(word, ".") == 2 {
		r.Enhanced, rest = word, after
	}
	r.Text = rest
	return answer{reply: r, kind: "reply"}, nil
}

type matcher struct {
	glob   pattern
	answer answer
}

// parseMatcher parses "GLOB ANSWER".
func parseMatcher(v string) (matcher, error) {
	g, rest, ok := strings.Cut(v, " ")
	if !ok {
		return matcher{}, fmt.Errorf("want GLOB ANSWER, got %q", v)
	}
	a, err := parseAnswer(strings.TrimSpace(rest))
	return matcher{pattern(g), a}, err
}

// pattern is a pattern of internal/glob: "*" any run of characters, "?"
// one, ignoring case.
type pattern string

func (p pattern) match(s string) bool { return glob.Match(string(p), s) }

// Recorder is a Handler that keeps every message it reads to its end, and
// then answers as the header's "handler" key says. A message whose reading
// failed (a limit, a bare line end, a broken connection) is not kept: the
// server refuses it, so nothing was delivered.
type Recorder struct {
	answer answer
	// lmtp answers recipients one by one, for ServeLMTP: the last
	// matcher whose GLOB matches a recipient gives its result.
	lmtp []matcher
	mu   sync.Mutex
	msgs []transcript.Message
}

// ServeSMTP implements smtpd.Handler.
func (r *Recorder) ServeSMTP(ctx context.Context, env *smtpd.Envelope, msg io.Reader) error {
	data, err := io.ReadAll(msg)
	if err != nil {
		return err
	}
	m := transcript.Message{Hello: env.Hello, TLS: env.TLS != nil, Auth: env.AuthIdentity,
		Mail: pathString(env.ReversePath, env.MailParams), Data: data}
	for _, rc := range env.Recipients {
		m.Rcpts = append(m.Rcpts, pathString(rc.ForwardPath, rc.Params))
	}
	r.mu.Lock()
	r.msgs = append(r.msgs, m)
	r.mu.Unlock()
	return r.answer.err()
}

// ServeLMTP implements smtpd.LMTPHandler: the message is kept as
// ServeSMTP keeps it, and each recipient gets the answer of the last
// lmtp-recipient line matching it, or the handler's answer.
func (r *Recorder) ServeLMTP(ctx context.Context, env *smtpd.Envelope, msg io.Reader) []error {
	err := r.ServeSMTP(ctx, env, msg)
	out := make([]error, len(env.Recipients))
	for i, rc := range env.Recipients {
		out[i] = err
		for _, m := range r.lmtp {
			if m.glob.match(rc.ForwardPath.String()) {
				out[i] = m.answer.err()
			}
		}
	}
	return out
}

// Messages returns the messages kept so far.
func (r *Recorder) Messages() []transcript.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]transcript.Message(nil), r.msgs...)
}

// pathString renders a path and its parameters as a delivery section
// writes them: "<a@example.org> BODY=8BITMIME SIZE=10".
func pathString(p smtpd.Path, params smtpd.Params) string {
	s := "<" + p.String() + ">"
	var kv []string
	for k, v := range params {
		if v != "" {
			k += "=" + v
		}
		kv = append(kv, k)
	}
	sort.Strings(kv)
	for _, p := range kv {
		s += " " + p
	}
	return s
}
