package main

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"smtpd/conformance"
	"smtpd/internal/transcript"
)

type config struct {
	addr        string
	filter      *regexp.Regexp
	tlsInsecure bool
	timeout     time.Duration // per reply
	caseTimeout time.Duration // per case; zero means none
	auth        string        // -auth: an account the target accepts
	tlsAddr     string        // -tls-addr: the target's implicit-TLS port
	lmtp        bool          // -lmtp: the target speaks LMTP
	deliver     bool          // -deliver: complete messages
	sink        bool          // -sink: the target accepts any address
	strict      bool          // -profile strict
	parallel    int           // cases at a time; zero means one

	// vars fill the placeholders: the addresses, the account, the run.
	vars transcript.Vars

	// tlsConfig, when set, replaces the client TLS configuration made
	// from tlsInsecure (tests use it to trust their own certificate).
	tlsConfig *tls.Config
}

// clientTLS is the client's TLS configuration: the system's roots and the
// target's host name, or no verification at all with -tls-insecure.
func (cfg config) clientTLS(addr string) *tls.Config {
	if cfg.tlsConfig != nil {
		return cfg.tlsConfig.Clone()
	}
	host, _, _ := net.SplitHostPort(addr)
	return &tls.Config{ServerName: host, InsecureSkipVerify: cfg.tlsInsecure}
}

// plan is a run before it runs: the target as probed, the cases, and
// for each the reason it is skipped ("" to run).
type plan struct {
	target conformance.Target
	probe  probed
	suite  []*transcript.Transcript
	skip   []string
	opt    transcript.Options
}

// prepare loads the suite with cfg's placeholders, probes the target and
// decides which cases run.
func prepare(cfg config) (*plan, error) {
	if cfg.vars.From == "" {
		cfg.vars = transcript.DefaultVars
	}
	suite, err := conformance.LoadVars(cfg.vars)
	if err != nil {
		return nil, err
	}
	p, err := probe(cfg)
	if err != nil {
		return nil, fmt.Errorf("reading the target's EHLO: %v", err)
	}
	target := conformance.Target{Ext: p.ext, TLSExt: p.tlsExt, Auth: cfg.auth, LMTP: cfg.lmtp,
		Strict: cfg.strict, Sink: cfg.sink, Deliver: cfg.deliver,
		Rcpt2: cfg.vars.Rcpt2 != "", Refused: cfg.vars.Refused != "", Rcpt: cfg.vars.Rcpt}
	if p.tlsErr != "" {
		target.TLSFailed = "STARTTLS probe failed, so no TLS case runs: " + p.tlsErr
		if strings.Contains(p.tlsErr, "x509") || strings.Contains(p.tlsErr, "certificate") {
			target.TLSFailed += " (smtpconform -tls-insecure does not verify the certificate)"
		}
	}
	if cfg.tlsAddr != "" {
		target.ImplicitTLS = true
		if target.ImplicitExt, err = probeImplicit(cfg); err != nil {
			return nil, fmt.Errorf("reading the EHLO of the implicit-TLS port: %v", err)
		}
	}
	_, enhanced := p.ext["ENHANCEDSTATUSCODES"]
	pl := &plan{target: target, probe: p,
		opt: transcript.Options{ReplyTimeout: cfg.timeout, IgnoreEnhanced: !enhanced, TLSConfig: cfg.clientTLS(cfg.addr)}}
	for _, t := range suite {
		if cfg.filter != nil && !cfg.filter.MatchString(strings.TrimSuffix(t.Name, ".txt")) {
			continue
		}
		pl.suite = append(pl.suite, t)
		pl.skip = append(pl.skip, conformance.Skip(t, target))
	}
	return pl, nil
}

// messages counts the messages the cases that run would deliver if the
// target conforms, and how many cases could deliver one if it does not.
func (pl *plan) messages() (conforming, cases int) {
	for i, t := range pl.suite {
		if pl.skip[i] == "" && conformance.MayDeliver(t) {
			conforming += len(t.Deliveries)
			cases++
		}
	}
	return conforming, cases
}

// replayAll replays every case of the plan, cfg.parallel at a time, each
// on its own connection, and reports them in name order.
func replayAll(cfg config) (*report, error) {
	pl, err := prepare(cfg)
	if err != nil {
		return nil, err
	}
	return pl.run(cfg), nil
}

func (pl *plan) run(cfg config) *report {
	rep := newReport(cfg, pl)
	results := make([]result, len(pl.suite))
	work := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < max(cfg.parallel, 1); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				results[i] = pl.runCase(cfg, i)
			}
		}()
	}
	for i := range pl.suite {
		work <- i
	}
	close(work)
	wg.Wait()
	for _, r := range results {
		rep.add(r)
	}
	return rep
}

// runCase replays case i, or says why it is skipped.
func (pl *plan) runCase(cfg config, i int) result {
	t := pl.suite[i]
	r := result{Name: strings.TrimSuffix(t.Name, ".txt"), Level: conformance.Level(t), RFC: t.Ref, Comment: t.Comment}
	if pl.skip[i] != "" {
		r.Result, r.Reason = "skip", pl.skip[i]
		return r
	}
	start := time.Now()
	err := replayOne(cfg, t, pl.opt)
	r.DurationMS = time.Since(start).Milliseconds()
	var f *transcript.Failure
	switch {
	case err == nil:
		r.Result = "pass"
		if len(t.Deliveries) > 0 {
			r.Delivery = "not checkable from outside"
		}
	case isCertificateError(err):
		// A certificate the checker does not trust says nothing about
		// conformance.
		r.Result, r.Reason = "skip", "TLS certificate not trusted: "+err.Error()+" (smtpconform -tls-insecure)"
	case errors.As(err, &f):
		r.Result, r.Reason = "fail", err.Error()
		r.Want, r.Got, r.Sent, r.Line = f.Want, f.Got, f.Sent, f.Line
	default:
		r.Result, r.Reason, r.Got = "fail", err.Error(), err.Error()
	}
	return r
}

func isCertificateError(err error) bool {
	s := err.Error()
	return strings.Contains(s, "x509:") || strings.Contains(s, "tls: failed to verify certificate")
}

// replayOne replays t on a new connection, within cfg.caseTimeout, and
// then ends the session with QUIT, whatever happened (Options.Quit): a
// server must not be left holding a session the checker opened.
func replayOne(cfg config, t *transcript.Transcript, opt transcript.Options) error {
	var conn net.Conn
	var err error
	d := &net.Dialer{Timeout: 5 * time.Second}
	if v, _ := t.Get("tls"); v == "implicit" {
		conn, err = tls.DialWithDialer(d, "tcp", cfg.tlsAddr, cfg.clientTLS(cfg.tlsAddr))
	} else {
		conn, err = d.Dial("tcp", cfg.addr)
	}
	if err != nil {
		return err
	}
	var timedOut atomic.Bool
	if cfg.caseTimeout > 0 {
		stop := time.AfterFunc(cfg.caseTimeout, func() {
			timedOut.Store(true)
			conn.Close()
		})
		defer stop.Stop()
	}
	defer conn.Close()
	opt.Quit = true
	err = transcript.Replay(conn, t, opt)
	if timedOut.Load() {
		return fmt.Errorf("%s: the case took longer than -case-timeout %v (%v)", t.Name, cfg.caseTimeout, err)
	}
	return err
}

type probed struct {
	ext, tlsExt conformance.Extensions
	tlsErr      string
}

// probe connects once, sends EHLO (LHLO with -lmtp) and returns the
// extensions offered; when STARTTLS is among them, it starts TLS and
// reads the EHLO reply again.
func probe(cfg config) (probed, error) {
	var p probed
	conn, err := net.DialTimeout("tcp", cfg.addr, 5*time.Second)
	if err != nil {
		return p, err
	}
	defer func() { conn.Close() }()
	conn.SetDeadline(time.Now().Add(cfg.timeout))
	br := bufio.NewReader(conn)
	if greeting, err := readReply(br); err != nil {
		return p, err
	} else if !strings.HasPrefix(greeting[0], "220") {
		return p, fmt.Errorf("greeting %q", greeting)
	}
	hello := "EHLO smtpconform.example\r\n"
	if cfg.lmtp {
		hello = "LHLO smtpconform.example\r\n"
	}
	fmt.Fprint(conn, hello)
	reply, err := readReply(br)
	if err != nil {
		return p, err
	}
	if !strings.HasPrefix(reply[0], "250") {
		fmt.Fprintf(conn, "QUIT\r\n")
		p.ext = conformance.Extensions{} // no ESMTP at all
		return p, nil
	}
	p.ext = conformance.ParseEHLO(reply)
	if _, ok := p.ext["STARTTLS"]; !ok {
		fmt.Fprintf(conn, "QUIT\r\n")
		return p, nil
	}
	fmt.Fprintf(conn, "STARTTLS\r\n")
	if r, err := readReply(br); err != nil || !strings.HasPrefix(r[0], "220") {
		p.tlsErr = fmt.Sprintf("STARTTLS: %q, %v", r, err)
		return p, nil
	}
	tc := tls.Client(conn, cfg.clientTLS(cfg.addr))
	if err := tc.Handshake(); err != nil {
		p.tlsErr = "TLS handshake: " + err.Error()
		return p, nil
	}
	conn, br = tc, bufio.NewReader(tc)
	fmt.Fprint(conn, hello)
	if reply, err = readReply(br); err != nil || !strings.HasPrefix(reply[0], "250") {
		p.tlsErr = fmt.Sprintf("EHLO after STARTTLS: %q, %v", reply, err)
		return p, nil
	}
	p.tlsExt = conformance.ParseEHLO(reply)
	fmt.Fprintf(conn, "QUIT\r\n")
	return p, nil
}

// probeImplicit reads the EHLO reply on the implicit-TLS port.
func probeImplicit(cfg config) (conformance.Extensions, error) {
	d := &net.Dialer{Timeout: 5 * time.Second}
	conn, err := tls.DialWithDialer(d, "tcp", cfg.tlsAddr, cfg.clientTLS(cfg.tlsAddr))
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(cfg.timeout))
	br := bufio.NewReader(conn)
	if greeting, err := readReply(br); err != nil {
		return nil, err
	} else if !strings.HasPrefix(greeting[0], "220") {
		return nil, fmt.Errorf("greeting %q", greeting)
	}
	fmt.Fprintf(conn, "EHLO smtpconform.example\r\n")
	reply, err := readReply(br)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(conn, "QUIT\r\n")
	if !strings.HasPrefix(reply[0], "250") {
		return conformance.Extensions{}, nil
	}
	return conformance.ParseEHLO(reply), nil
}

func readReply(br *bufio.Reader) ([]string, error) {
	var lines []string
	for {
		l, err := br.ReadString('\n')
		if err != nil {
			return nil, err
		}
		l = strings.TrimRight(l, "\r\n")
		lines = append(lines, l)
		if len(l) < 4 || l[3] != '-' {
			return lines, nil
		}
	}
}
