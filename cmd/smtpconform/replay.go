package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"regexp"
	"strings"
	"time"

	"smtpd/conformance"
	"smtpd/internal/transcript"
)

type config struct {
	addr        string
	filter      *regexp.Regexp
	tlsInsecure bool // for the STARTTLS cases to come; no case needs TLS yet
	timeout     time.Duration
}

// report is the outcome of a run.
type report struct {
	Target     string   `json:"target"`
	Extensions []string `json:"extensions"`
	Cases      []result `json:"cases"`
	Passed     int      `json:"passed"`
	Failed     int      `json:"failed"`
	Skipped    int      `json:"skipped"`
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
	ext, err := probe(cfg.addr, cfg.timeout)
	if err != nil {
		return nil, fmt.Errorf("reading the target's EHLO: %v", err)
	}
	rep := &report{Target: cfg.addr}
	for kw, p := range ext {
		rep.Extensions = append(rep.Extensions, strings.TrimSpace(kw+" "+p))
	}
	_, enhanced := ext["ENHANCEDSTATUSCODES"]
	opt := transcript.Options{ReplyTimeout: cfg.timeout, IgnoreEnhanced: !enhanced}
	for _, t := range suite {
		if cfg.filter != nil && !cfg.filter.MatchString(strings.TrimSuffix(t.Name, ".txt")) {
			continue
		}
		r := result{Name: strings.TrimSuffix(t.Name, ".txt")}
		if why := conformance.Skip(t, ext); why != "" {
			r.Result, r.Reason = "skip", why
			rep.Skipped++
		} else if err := replayOne(cfg.addr, t, opt); err != nil {
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

func replayOne(addr string, t *transcript.Transcript, opt transcript.Options) error {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	return transcript.Replay(conn, t, opt)
}

// probe connects once, sends EHLO and returns the extensions offered.
func probe(addr string, timeout time.Duration) (conformance.Extensions, error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(timeout))
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
		return conformance.Extensions{}, nil // no ESMTP at all
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
