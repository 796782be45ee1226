package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/smtp"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"smtpd/conformance"
	"smtpd/internal/transcript"
	"smtpd/smtpd"
)

// serve runs srv on a loopback port for the test's duration.
func serve(t *testing.T, srv *smtpd.Server) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return l.Addr().String()
}

// runVars are the placeholders of a test run: the suite's addresses on
// loopback, no refused recipient, a fresh run ID, as main makes them
// without address flags.
func runVars() transcript.Vars { return addresses(nil, "", "", "") }

// TestAgainstSmtpd replays the suite against the library's server in its
// default configuration, a sink, as smtpconform would against any server,
// with every case allowed (-deliver -sink -profile strict): every case
// passes or is skipped for a stated reason.
func TestAgainstSmtpd(t *testing.T) {
	addr := serve(t, &smtpd.Server{Hostname: "mx.test"})
	rep, err := replayAll(config{addr: addr, timeout: 10 * time.Second, vars: runVars(),
		deliver: true, sink: true, strict: true, parallel: 4})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rep.Cases {
		if r.Result == "fail" {
			t.Errorf("%s: %s", r.Name, r.Reason)
		}
		if r.Result == "skip" && r.Reason == "" {
			t.Errorf("%s skipped without a reason", r.Name)
		}
		if r.Level == "" {
			t.Errorf("%s has no level", r.Name)
		}
	}
	if rep.Passed < 150 || rep.Unchecked == 0 {
		t.Errorf("%d passed, %d with deliveries not checkable; want a real run", rep.Passed, rep.Unchecked)
	}
	var b strings.Builder
	rep.writeText(&b, false)
	if !strings.HasSuffix(b.String(), "0 failed, "+strconv.Itoa(rep.Skipped)+" skipped\n") {
		t.Errorf("summary line: %q", lastLine(b.String()))
	}
	if !strings.Contains(b.String(), "MUST   ") || !strings.Contains(b.String(), "policy ") {
		t.Errorf("no counts by level in the text report:\n%s", b.String())
	}
}

// collector is a Handler that keeps every message it is handed.
type collector struct {
	mu   sync.Mutex
	msgs []string
}

func (c *collector) ServeSMTP(ctx context.Context, env *smtpd.Envelope, r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.msgs = append(c.msgs, string(b))
	return nil
}

func (c *collector) messages() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.msgs...)
}

// TestSafeByDefault: without -deliver no message is completed, whatever
// the cases send; with it, the messages are as many as announced, and each
// is marked with the case and the run.
func TestSafeByDefault(t *testing.T) {
	var got collector
	addr := serve(t, &smtpd.Server{Hostname: "mx.test", Handler: &got, DisableReceived: true})
	cfg := config{addr: addr, timeout: 10 * time.Second, vars: runVars(), parallel: 4}
	rep, err := replayAll(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(got.messages()); n != 0 {
		t.Fatalf("a run without -deliver delivered %d messages", n)
	}
	needDeliver := 0
	for _, r := range rep.Cases {
		if r.Result == "fail" {
			t.Errorf("%s: %s", r.Name, r.Reason)
		}
		if strings.HasPrefix(r.Reason, "needs -deliver (delivers ") {
			needDeliver++
		}
	}
	if needDeliver < 60 {
		t.Errorf("%d cases skipped for -deliver, want the 60 and more that send a message", needDeliver)
	}

	cfg.deliver = true
	pl, err := prepare(cfg)
	if err != nil {
		t.Fatal(err)
	}
	announced, _ := pl.messages()
	rep = pl.run(cfg)
	if rep.Failed != 0 {
		t.Errorf("%d failed with -deliver", rep.Failed)
	}
	msgs := got.messages()
	if len(msgs) != announced || announced < 60 {
		t.Errorf("delivered %d messages, announced %d", len(msgs), announced)
	}
	mark := regexp.MustCompile(`^X-Smtpconform: [a-z0-9_]+; run=` + regexp.QuoteMeta(cfg.vars.Run) + "\r\n")
	for _, m := range msgs {
		if !mark.MatchString(m) {
			t.Errorf("message not marked: %.120q", m)
		}
		if i := strings.Index(m, "\r\nSubject: "); i >= 0 && !strings.HasPrefix(m[i+len("\r\nSubject: "):], "[smtpconform] ") {
			t.Errorf("Subject without the [smtpconform] prefix: %.200q", m)
		}
	}
}

// TestLoopbackOnly: against a server that is not on loopback the checker
// wants the addresses named.
func TestLoopbackOnly(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:25": true, "[::1]:25": true, "localhost:25": true, "127.8.9.1:2525": true,
		"192.0.2.1:25": false, "mx.example.org:25": false, "10.0.0.1:25": false, "garbage": false,
	} {
		if got := isLoopback(addr); got != want {
			t.Errorf("isLoopback(%q) = %v, want %v", addr, got, want)
		}
	}
	v := addresses([]string{"me@example.com", "you@example.com"}, "", "no@example.com", "u:p")
	if v.From != "me@example.com" || v.Rcpt != "me@example.com" || v.Rcpt2 != "you@example.com" ||
		v.Refused != "no@example.com" || v.User != "u" || v.Password != "p" || v.Run == "" {
		t.Errorf("addresses: %+v", v)
	}
	if v := addresses(nil, "", "", ""); v.Refused != "" || v.Rcpt != transcript.DefaultVars.Rcpt {
		t.Errorf("addresses without flags: %+v", v)
	}
}

// TestFindsFaults replays the suite against a deliberately broken server
// and checks that the cases for its faults fail, while correct behaviour
// still passes.
func TestFindsFaults(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go brokenSession(c)
		}
	}()
	rep, err := replayAll(config{addr: l.Addr().String(), timeout: 2 * time.Second, vars: runVars(),
		deliver: true, sink: true, strict: true, parallel: 4})
	if err != nil {
		t.Fatal(err)
	}
	got := make(map[string]result)
	for _, r := range rep.Cases {
		got[r.Name] = r
	}
	for _, name := range []string{
		"smuggling_lf_dot_lf",         // ends DATA at <LF>.<LF>
		"smuggling_crlf_dot_lf",       // and at <CR><LF>.<LF>
		"state_identified_rcpt",       // 502 where RFC 5321 says 503
		"state_connected_mail",        // no sequence check before HELO
		"state_mail_mail",             // nested MAIL accepted
		"command_not_implemented_502", // 500 where this project answers 502 (strict)
		"command_bare_lf",             // a bare LF ends the command
	} {
		if r := got[name]; r.Result != "fail" {
			t.Errorf("%s: %s, want fail", name, r.Result)
		}
	}
	for _, name := range []string{"state_connected_quit", "basic_session", "state_identified_noop"} {
		if r := got[name]; r.Result != "pass" {
			t.Errorf("%s: %s %s, want pass", name, r.Result, r.Reason)
		}
	}
	if rep.Failed == 0 {
		t.Error("no case failed against the broken server")
	}
	checkReports(t, rep)
}

// checkReports: the three report formats say, for a failure, its level,
// RFC section, what was sent, wanted and got; the JSON document has the
// documented fields.
func checkReports(t *testing.T, rep *report) {
	var text, md, js strings.Builder
	if err := rep.writeText(&text, false); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"\nFAIL MUST smuggling_lf_dot_lf (RFC 5321 4.1.1.4", "\n  sent:   \"", "\n  want:   reply", "\n  got:    [", "\nMUST   "} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, text.String())
		}
	}
	if err := rep.writeMarkdown(&md); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| level | passed | failed | skipped |", "\n### MUST failures (", "\n| `smuggling_lf_dot_lf` | RFC 5321 4.1.1.4"} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("Markdown report lacks %q:\n%s", want, md.String())
		}
	}
	if err := rep.writeJSON(&js); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Target string `json:"target"`
		Cases  []struct {
			Name, Level, RFC, Result, Want, Got, Reason string
			DurationMS                                  *int64 `json:"duration_ms"`
		} `json:"cases"`
		Passed, Failed, Skipped *int
		Levels                  map[string]struct{ Passed, Failed, Skipped int }
	}
	if err := json.Unmarshal([]byte(js.String()), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Target != rep.Target || doc.Passed == nil || doc.Failed == nil || doc.Skipped == nil ||
		*doc.Failed != rep.Failed || doc.Levels["MUST"].Failed == 0 || len(doc.Cases) != len(rep.Cases) {
		t.Errorf("JSON document: %+v", doc)
	}
	for _, c := range doc.Cases {
		ok := c.Name != "" && c.DurationMS != nil && (c.Level == "MUST" || c.Level == "SHOULD" || c.Level == "policy") && c.RFC != ""
		switch c.Result {
		case "fail":
			ok = ok && c.Want != "" && c.Got != "" && c.Reason != ""
		case "skip":
			ok = ok && c.Reason != ""
		case "pass":
		default:
			ok = false
		}
		if !ok {
			t.Errorf("JSON case %+v", c)
		}
	}
}

// TestShow: -show prints the case as written, placeholders and all.
func TestShow(t *testing.T) {
	var b strings.Builder
	if err := showCase(&b, "smuggling_lf_dot_lf"); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(b.String(), "# <LF>.<LF> does not end the data") || !strings.Contains(b.String(), "MAIL FROM:<${from}>") {
		t.Errorf("-show printed:\n%s", b.String())
	}
	if err := showCase(&b, "no_such_case"); err == nil {
		t.Error("-show of an unknown case gave no error")
	}
}

// brokenSession is an SMTP server with classic faults: lines end at a bare
// LF, DATA ends at <LF>.<LF>, there are no sequence checks, a command out
// of sequence gets 502, every unknown verb 500.
func brokenSession(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	say := func(s string) { c.Write([]byte(s + "\r\n")) }
	say("220 broken.test ESMTP")
	mail := false
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		verb, _, _ := strings.Cut(strings.ToUpper(line), " ")
		switch verb {
		case "EHLO":
			say("250-broken.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SIZE")
		case "HELO", "NOOP", "RSET":
			say("250 OK")
		case "MAIL":
			mail = true
			say("250 OK")
		case "RCPT":
			if !mail {
				say("502 no")
				continue
			}
			say("250 OK")
		case "DATA":
			say("354 go")
			for {
				l, err := br.ReadString('\n')
				if err != nil {
					return
				}
				if strings.TrimRight(l, "\r\n") == "." {
					break
				}
			}
			mail = false
			say("250 OK")
		case "VRFY":
			say("252 maybe")
		case "QUIT":
			say("221 bye")
			return
		default:
			say("500 what")
		}
	}
}

// TestRecord records a net/smtp session through the proxy and replays the
// recording against the in-process runner: it must pass there, deliveries
// included.
func TestRecord(t *testing.T) {
	upstream := serve(t, &smtpd.Server{Hostname: "mx.test"})
	dir := t.TempDir()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	wrote := make(chan string, 1)
	p := &proxy{upstream: upstream, out: dir, logf: func(format string, args ...any) {
		if strings.HasPrefix(format, "wrote") {
			wrote <- args[0].(string)
		} else {
			t.Logf(format, args...)
		}
	}}
	go p.serve(l)

	msg := "Subject: recorded\r\n\r\n.leading dot\r\nbody\r\n"
	if err := smtp.SendMail(l.Addr().String(), nil, "alice@example.org", []string{"bob@example.net"}, []byte(msg)); err != nil {
		t.Fatal(err)
	}
	var path string
	select {
	case path = <-wrote:
	case <-time.After(10 * time.Second):
		t.Fatal("no transcript written")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := transcript.Parse(filepath.Base(path), b)
	if err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	if len(tr.Deliveries) != 1 || string(tr.Deliveries[0].Data[0].Exact) != msg {
		t.Errorf("recorded deliveries %+v\n%s", tr.Deliveries, b)
	}
	if err := conformance.RunLocal(tr); err != nil {
		t.Errorf("replaying the recording: %v\n%s", err, b)
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// TestAgainstSmtpdExtensions replays the suite against the library set up
// as smtpconform's flags describe it: STARTTLS and implicit TLS with the
// runner's certificate, the account jane:secret (-auth), and then as an
// LMTP server (-lmtp). The cases for them run, and pass.
func TestAgainstSmtpdExtensions(t *testing.T) {
	serverTLS, clientTLS, err := conformance.RunnerTLS()
	if err != nil {
		t.Fatal(err)
	}
	auth := func(ctx context.Context, env *smtpd.Envelope, identity, username, password string) error {
		if username != "jane" || password != "secret" || identity != "" && identity != "jane" {
			return smtpd.ErrAuthFailed
		}
		return nil
	}
	srv := &smtpd.Server{Hostname: "mx.test", TLSConfig: serverTLS, Authenticate: auth}
	addr := serve(t, srv)
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.ServeTLS(tl, "", "")
	lmtpAddr := serve(t, &smtpd.Server{Hostname: "mx.test", LMTP: true})

	for _, cfg := range []config{
		{addr: addr, tlsAddr: tl.Addr().String(), auth: "jane:secret", tlsConfig: clientTLS, timeout: 10 * time.Second,
			vars: addresses(nil, "", "", "jane:secret"), deliver: true, parallel: 4},
		{addr: lmtpAddr, lmtp: true, timeout: 10 * time.Second, vars: runVars(), deliver: true, parallel: 4},
	} {
		rep, err := replayAll(cfg)
		if err != nil {
			t.Fatal(err)
		}
		got := make(map[string]string)
		for _, r := range rep.Cases {
			got[r.Name] = r.Result
			if r.Result == "fail" {
				t.Errorf("%s: %s: %s", cfg.addr, r.Name, r.Reason)
			}
		}
		want := []string{"starttls_pipelined_ehlo", "starttls_pipelined_after_ehlo_group", "auth_long_response", "auth_after_starttls", "implicit_tls_session", "implicit_tls_auth_offered", "bdat_smuggling_inside_chunk"}
		if cfg.lmtp {
			want = []string{"lmtp_lhlo", "lmtp_ehlo_refused", "lmtp_per_recipient_replies"}
			if got["basic_session"] != "skip" {
				t.Errorf("basic_session against an LMTP target: %s, want skip", got["basic_session"])
			}
		}
		for _, name := range want {
			if got[name] != "pass" {
				t.Errorf("%s: %s: %q, want pass", cfg.addr, name, got[name])
			}
		}
	}
}
