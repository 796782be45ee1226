package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"smtpd/conformance"
)

// report is the outcome of a run, and the JSON document -report json
// prints. Its fields are stable: new ones may be added, none renamed.
type report struct {
	// Target is -addr; Run the ID in each delivered message's
	// X-Smtpconform field; Profile "portable" or "strict"; Date the
	// start of the run (RFC 3339).
	Target  string `json:"target"`
	Run     string `json:"run"`
	Profile string `json:"profile"`
	Date    string `json:"date"`
	// Extensions are the EHLO keywords offered in the clear;
	// TLSExtensions those offered after STARTTLS; TLSProbe says why the
	// probe could not look inside STARTTLS.
	Extensions    []string `json:"extensions"`
	TLSExtensions []string `json:"tls_extensions,omitempty"`
	TLSProbe      string   `json:"tls_probe,omitempty"`
	// Cases are all the cases, in name order.
	Cases []result `json:"cases"`
	// Passed, Failed and Skipped count the cases; Levels counts them by
	// requirement level ("MUST", "SHOULD", "policy").
	Passed  int               `json:"passed"`
	Failed  int               `json:"failed"`
	Skipped int               `json:"skipped"`
	Levels  map[string]*count `json:"levels"`
	// Unchecked counts passed cases whose delivery section could not be
	// checked from outside: only their replies were.
	Unchecked int `json:"delivery_not_checkable"`
}

type count struct {
	Passed  int `json:"passed"`
	Failed  int `json:"failed"`
	Skipped int `json:"skipped"`
}

// result is one case.
type result struct {
	Name    string `json:"name"`
	Level   string `json:"level"` // MUST, SHOULD or policy
	RFC     string `json:"rfc"`
	Comment string `json:"what"`
	Result  string `json:"result"` // pass, fail or skip
	// Want and Got are what the failing step wanted and what came back;
	// Sent the client's last write before it; Line the step's line in
	// the transcript (smtpconform -show NAME prints it).
	Want string `json:"want,omitempty"`
	Got  string `json:"got,omitempty"`
	Sent string `json:"sent,omitempty"`
	Line int    `json:"line,omitempty"`
	// Reason is why the case failed (the whole message) or was skipped.
	Reason     string `json:"reason,omitempty"`
	DurationMS int64  `json:"duration_ms"`
	// Delivery is "not checkable from outside" for a passed case that
	// describes what the handler must receive.
	Delivery string `json:"delivery,omitempty"`
}

// levels is the order in which reports list requirement levels.
var levels = []string{"MUST", "SHOULD", "policy"}

func newReport(cfg config, pl *plan) *report {
	profile := "portable"
	if cfg.strict {
		profile = "strict"
	}
	rep := &report{Target: cfg.addr, Run: cfg.vars.Run, Profile: profile, Date: time.Now().UTC().Format(time.RFC3339),
		Extensions: list(pl.probe.ext), TLSExtensions: list(pl.probe.tlsExt), TLSProbe: pl.probe.tlsErr,
		Levels: map[string]*count{}}
	for _, l := range levels {
		rep.Levels[l] = &count{}
	}
	return rep
}

// list renders the extensions as "KEYWORD params", sorted.
func list(ext conformance.Extensions) []string {
	var out []string
	for kw, p := range ext {
		out = append(out, strings.TrimSpace(kw+" "+p))
	}
	sort.Strings(out)
	return out
}

func (rep *report) add(r result) {
	c := rep.Levels[r.Level]
	if c == nil {
		c = &count{}
		rep.Levels[r.Level] = c
	}
	switch r.Result {
	case "pass":
		rep.Passed++
		c.Passed++
		if r.Delivery != "" {
			rep.Unchecked++
		}
	case "fail":
		rep.Failed++
		c.Failed++
	case "skip":
		rep.Skipped++
		c.Skipped++
	}
	rep.Cases = append(rep.Cases, r)
}

// runReplay prepares the run, says what a -deliver run will send before
// it starts, runs it and writes the report; it exits 1 when a case failed.
func runReplay(cfg config, format string, verbose bool) error {
	pl, err := prepare(cfg)
	if err != nil {
		return err
	}
	if cfg.deliver {
		n, cases := pl.messages()
		rcpts := cfg.vars.Rcpt
		if cfg.vars.Rcpt2 != "" {
			rcpts += " and " + cfg.vars.Rcpt2
		}
		fmt.Fprintf(os.Stderr, "smtpconform: -deliver: %d cases will deliver %d messages to %s (more if the server "+
			"does not conform), each with the header field \"X-Smtpconform: CASE; run=%s\"\n", cases, n, rcpts, cfg.vars.Run)
	}
	rep := pl.run(cfg)
	switch format {
	case "json":
		err = rep.writeJSON(os.Stdout)
	case "md":
		err = rep.writeMarkdown(os.Stdout)
	default:
		err = rep.writeText(os.Stdout, verbose)
	}
	if err != nil {
		return err
	}
	if rep.Failed > 0 {
		os.Exit(1)
	}
	return nil
}

func (rep *report) failures(level string) []result {
	var out []result
	for _, r := range rep.Cases {
		if r.Result == "fail" && r.Level == level {
			out = append(out, r)
		}
	}
	return out
}

// skipReasons counts the skipped cases by reason, most frequent first.
func (rep *report) skipReasons() []string {
	n := map[string]int{}
	for _, r := range rep.Cases {
		if r.Result == "skip" {
			reason := r.Reason
			if strings.HasPrefix(reason, "needs server configuration") {
				reason = "needs server configuration (a limit, a timeout, a refusing callback)"
			} else if strings.HasPrefix(reason, "needs -deliver") {
				reason = "needs -deliver (completes a message)"
			}
			n[reason]++
		}
	}
	var out []string
	for r := range n {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return n[out[i]] > n[out[j]] || n[out[i]] == n[out[j]] && out[i] < out[j] })
	for i, r := range out {
		out[i] = fmt.Sprintf("%4d  %s", n[r], r)
	}
	return out
}

func (rep *report) writeText(w io.Writer, verbose bool) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "target %s, run %s, profile %s\n", rep.Target, rep.Run, rep.Profile)
	fmt.Fprintf(bw, "offers: %s\n", strings.Join(rep.Extensions, ", "))
	if rep.TLSExtensions != nil {
		fmt.Fprintf(bw, "after STARTTLS: %s\n", strings.Join(rep.TLSExtensions, ", "))
	}
	if rep.TLSProbe != "" {
		fmt.Fprintf(bw, "STARTTLS probe failed: %s\n", rep.TLSProbe)
	}
	if verbose {
		for _, r := range rep.Cases {
			fmt.Fprintf(bw, "%-4s %-6s %s", strings.ToUpper(r.Result), r.Level, r.Name)
			if r.Result == "skip" {
				fmt.Fprintf(bw, ": %s", r.Reason)
			}
			fmt.Fprintln(bw)
		}
	}
	for _, l := range append(levels, "") { // "": a case without a level, which the suite's tests forbid
		for _, r := range rep.failures(l) {
			fmt.Fprintf(bw, "\nFAIL %s %s (%s)\n  checks: %s\n", l, r.Name, r.RFC, r.Comment)
			if r.Line > 0 {
				fmt.Fprintf(bw, "  at:     %s.txt:%d\n  sent:   %s\n  want:   %s\n  got:    %s\n", r.Name, r.Line, r.Sent, r.Want, r.Got)
			} else {
				fmt.Fprintf(bw, "  error:  %s\n", r.Reason)
			}
		}
	}
	if reasons := rep.skipReasons(); len(reasons) > 0 {
		fmt.Fprintf(bw, "\nskipped, by reason:\n%s\n", strings.Join(reasons, "\n"))
	}
	fmt.Fprintln(bw)
	for _, l := range levels {
		c := rep.Levels[l]
		fmt.Fprintf(bw, "%-6s %d passed, %d failed, %d skipped\n", l, c.Passed, c.Failed, c.Skipped)
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

// writeMarkdown writes the report for an issue tracker: the counts by
// level, then a table of failures per level, then the skip reasons.
func (rep *report) writeMarkdown(w io.Writer) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "## smtpconform: `%s`\n\n", rep.Target)
	fmt.Fprintf(bw, "Run `%s` on %s, profile %s. Offers: %s.\n\n", rep.Run, rep.Date, rep.Profile, strings.Join(rep.Extensions, ", "))
	fmt.Fprintf(bw, "| level | passed | failed | skipped |\n| --- | ---: | ---: | ---: |\n")
	for _, l := range levels {
		c := rep.Levels[l]
		fmt.Fprintf(bw, "| %s | %d | %d | %d |\n", l, c.Passed, c.Failed, c.Skipped)
	}
	fmt.Fprintf(bw, "| all | %d | %d | %d |\n", rep.Passed, rep.Failed, rep.Skipped)
	for _, l := range levels {
		fails := rep.failures(l)
		if len(fails) == 0 {
			continue
		}
		fmt.Fprintf(bw, "\n### %s failures (%d)\n\n| case | RFC | checks | sent | want | got |\n| --- | --- | --- | --- | --- | --- |\n", l, len(fails))
		for _, r := range fails {
			fmt.Fprintf(bw, "| `%s` | %s | %s | %s | %s | %s |\n", r.Name, mdCell(r.RFC), mdCell(r.Comment),
				mdCode(r.Sent), mdCell(r.Want), mdCode(orReason(r.Got, r.Reason)))
		}
	}
	if reasons := rep.skipReasons(); len(reasons) > 0 {
		fmt.Fprintf(bw, "\n<details><summary>%d skipped</summary>\n\n```\n%s\n```\n</details>\n", rep.Skipped, strings.Join(reasons, "\n"))
	}
	return bw.Flush()
}

func orReason(got, reason string) string {
	if got != "" {
		return got
	}
	return reason
}

// mdCell makes s safe inside a Markdown table cell.
func mdCell(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	return strings.ReplaceAll(s, "\n", " ")
}

func mdCode(s string) string {
	if s == "" {
		return ""
	}
	return "`" + strings.ReplaceAll(mdCell(s), "`", "'") + "`"
}
