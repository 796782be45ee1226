package main

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"regexp"
	"sort"
	"strings"
	"time"

	"smtpd/conformance"
	"smtpd/internal/transcript"
)

type config struct {
	addr        string
	filter      *regexp.Regexp
	tlsInsecure bool
	timeout     time.Duration
	auth        string // -auth: the accounts the target accepts
	tlsAddr     string // -tls-addr: the target's implicit-TLS port
	lmtp        bool   // -lmtp: the target speaks LMTP

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

// report is the outcome of a run.
type report struct {
	Target     string   `json:"target"`
	Extensions []string `json:"extensions"`
	// TLSExtensions are those offered after STARTTLS.
	TLSExtensions []string `json:"tls_extensions,omitempty"`
	// TLSProbe says why the probe could not look inside STARTTLS.
	TLSProbe string   `json:"tls_probe,omitempty"`
	Cases    []result `json:"cases"`
	Passed   int      `json:"passed"`
	Failed   int      `json:"failed"`
	Skipped  int      `json:"skipped"`
	// Unchecked counts passed cases whose delivery section could not be
	// checked from outside.
	Unchecked int `json:"delivery_not_checkable"`
}

type result struct {
	Name   string `json:"name"`
	Result string `json:"result"` // pass, fail, skip
	Reason string `json:"reason,omitempty"`
	// Delivery is "not checkable from outside" for a case that describes
	// what the handler must receive.
	Delivery string `json:"delivery,omitempty"`
}

// replayAll replays every selected case against cfg.addr, one connection
// each, in name order.
func replayAll(cfg config) (*report, error) {
	suite, err := conformance.Load()
	if err != nil {
		return nil, err
	}
	p, err := probe(cfg)
	if err != nil {
		return nil, fmt.Errorf("reading the target's EHLO: %v", err)
	}
	target := conformance.Target{Ext: p.ext, TLSExt: p.tlsExt, Auth: cfg.auth, LMTP: cfg.lmtp}
	if cfg.tlsAddr != "" {
		target.ImplicitTLS = true
		if target.ImplicitExt, err = probeImplicit(cfg); err != nil {
			return nil, fmt.Errorf("reading the EHLO of the implicit-TLS port: %v", err)
		}
	}
	rep := &report{Target: cfg.addr, Extensions: list(p.ext), TLSExtensions: list(p.tlsExt), TLSProbe: p.tlsErr}
	_, enhanced := p.ext["ENHANCEDSTATUSCODES"]
	opt := transcript.Options{ReplyTimeout: cfg.timeout, IgnoreEnhanced: !enhanced, TLSConfig: cfg.clientTLS(cfg.addr)}
	for _, t := range suite {
		if cfg.filter != nil && !cfg.filter.MatchString(strings.TrimSuffix(t.Name, ".txt")) {
			continue
		}
		r := result{Name: strings.TrimSuffix(t.Name, ".txt")}
		if why := conformance.Skip(t, target); why != "" {
			r.Result, r.Reason = "skip", why
			rep.Skipped++
		} else if err := replayOne(cfg, t, opt); err != nil {
			r.Result, r.Reason = "fail", err.Error()
			rep.Failed++
		} else {
			r.Result = "pass"
			rep.Passed++
			if len(t.Deliveries) > 0 {
				r.Delivery = "not checkable from outside"
				rep.Unchecked++
			}
		}
		rep.Cases = append(rep.Cases, r)
	}
	return rep, nil
}

func list(ext conformance.Extensions) []string {
	var out []string
	for kw, p := range ext {
		out = append(out, strings.TrimSpace(kw+" "+p))
	}
	sort.Strings(out)
	return out
}

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
	defer conn.Close()
	return transcript.Replay(conn, t, opt)
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

func (rep *report) writeText(w io.Writer) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "target %s offers: %s\n", rep.Target, strings.Join(rep.Extensions, ", "))
	if rep.TLSExtensions != nil {
		fmt.Fprintf(bw, "after STARTTLS: %s\n", strings.Join(rep.TLSExtensions, ", "))
	}
	if rep.TLSProbe != "" {
		fmt.Fprintf(bw, "STARTTLS probe failed: %s\n", rep.TLSProbe)
	}
	for _, r := range rep.Cases {
		switch r.Result {
		case "pass":
			if r.Delivery != "" {
				fmt.Fprintf(bw, "PASS %s (replies only; delivery %s)\n", r.Name, r.Delivery)
			} else {
				fmt.Fprintf(bw, "PASS %s\n", r.Name)
			}
		case "fail":
			fmt.Fprintf(bw, "FAIL %s: %s\n", r.Name, r.Reason)
		case "skip":
			fmt.Fprintf(bw, "SKIP %s: %s\n", r.Name, r.Reason)
		}
	}
	if rep.Unchecked > 0 {
		fmt.Fprintf(bw, "%d of the passed cases describe a delivery, which cannot be checked from outside; only their replies were\n", rep.Unchecked)
	}
	fmt.Fprintf(bw, "%d passed, %d failed, %d skipped\n", rep.Passed, rep.Failed, rep.Skipped)
	return bw.Flush()
}

func (rep *report) writeJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}
