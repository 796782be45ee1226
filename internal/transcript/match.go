package transcript

import (
	"bytes"
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// Failure is a step of a transcript that did not go as written.
type Failure struct {
	Name string
	Line int
	Want string
	Got  string
	// Sent is the last write the client made before the step, quoted
	// and shortened, for reports that say what was sent.
	Sent string
}

func (f *Failure) Error() string {
	return fmt.Sprintf("%s:%d: want %s, got %s", f.Name, f.Line, f.Want, f.Got)
}

// String renders the pattern as written in the transcript, for messages.
func (lp LinePattern) String() string {
	s := strings.Join(lp.Codes, "|")
	if lp.More {
		s += "-"
	} else {
		s += " "
	}
	if lp.Enhanced != "" {
		s += lp.Enhanced + " "
	}
	if lp.Text != nil {
		s += lp.Text.String()
	}
	return strings.TrimSpace(s)
}

func (rp ReplyPattern) String() string {
	var lines []string
	for _, l := range rp.Lines {
		lines = append(lines, l.String())
	}
	if rp.OrClosed {
		return fmt.Sprintf("%q or the connection closed", lines)
	}
	return fmt.Sprintf("%q", lines)
}

// Match reports whether reply, its lines without CRLF, matches rp.
// ignoreEnhanced drops the enhanced-code check, for servers that do not
// offer ENHANCEDSTATUSCODES; a text pattern then matches after any code
// that looks like one.
func (rp ReplyPattern) Match(reply []string, ignoreEnhanced bool) bool {
	if len(rp.Lines) == 1 {
		lp := rp.Lines[0]
		for _, l := range reply {
			if !lp.matchCode(l) {
				return false
			}
		}
		return len(reply) > 0 && lp.matchRest(reply[len(reply)-1], ignoreEnhanced)
	}
	if len(reply) != len(rp.Lines) {
		return false
	}
	for i, lp := range rp.Lines {
		l := reply[i]
		if !lp.matchCode(l) || !lp.matchRest(l, ignoreEnhanced) {
			return false
		}
	}
	return true
}

func (lp LinePattern) matchCode(l string) bool {
	if len(l) < 3 {
		return false
	}
	for _, c := range lp.Codes {
		if (c[0] == 'x' || c[0] == l[0]) && (c[1] == 'x' || c[1] == l[1]) && (c[2] == 'x' || c[2] == l[2]) {
			return true
		}
	}
	return false
}

var replyEnhancedRe = regexp.MustCompile(`^[245]\.[0-9]{1,3}\.[0-9]{1,3}(?: |$)`)

// matchRest checks the separator, the enhanced code and the text of one
// reply line whose code matched.
func (lp LinePattern) matchRest(l string, ignoreEnhanced bool) bool {
	more := len(l) > 3 && l[3] == '-'
	if lp.More != more {
		return false
	}
	text := ""
	if len(l) > 4 {
		text = l[4:]
	}
	switch {
	case lp.Enhanced != "" && !ignoreEnhanced:
		word, rest, _ := strings.Cut(text, " ")
		if !matchEnhanced(lp.Enhanced, word) {
			return false
		}
		text = rest
	case lp.Enhanced != "" || ignoreEnhanced:
		if m := replyEnhancedRe.FindString(text); m != "" {
			text = text[len(m):]
		}
	}
	return lp.Text == nil || lp.Text.MatchString(text)
}

func matchEnhanced(pattern, got string) bool {
	pp, gp := strings.Split(pattern, "."), strings.Split(got, ".")
	if len(gp) != 3 || !replyEnhancedRe.MatchString(got) {
		return false
	}
	for i := range pp {
		if pp[i] != "x" && pp[i] != gp[i] {
			return false
		}
	}
	return true
}

// Message is a message as a handler received it, for CheckDeliveries.
type Message struct {
	Hello string
	TLS   bool     // the message came over TLS
	Auth  string   // the AUTH identity, "" for none
	Mail  string   // "<path> PARAM=value ..."
	Rcpts []string // the same form
	Data  []byte
}

// CheckDeliveries compares what the handler received with the transcript's
// delivery sections and returns the first difference.
func CheckDeliveries(t *Transcript, got []Message) error {
	fail := func(line int, want, got string) error {
		return &Failure{Name: t.Name, Line: line, Want: want, Got: got}
	}
	for i, want := range t.Deliveries {
		if i >= len(got) {
			return fail(want.Line, fmt.Sprintf("delivery %d", i+1), fmt.Sprintf("%d deliveries", len(got)))
		}
		g := got[i]
		if want.Hello != "" && want.Hello != g.Hello {
			return fail(want.Line, "hello: "+want.Hello, "hello: "+g.Hello)
		}
		if want.TLS != "" && (want.TLS == "yes") != g.TLS {
			return fail(want.Line, "tls: "+want.TLS, fmt.Sprintf("tls: %v", yesNo(g.TLS)))
		}
		if want.Auth != "" && want.Auth != g.Auth {
			return fail(want.Line, "auth: "+want.Auth, fmt.Sprintf("auth: %q", g.Auth))
		}
		if !samePath(want.Mail, g.Mail) {
			return fail(want.Line, "mail: "+want.Mail, "mail: "+g.Mail)
		}
		if len(want.Rcpts) != len(g.Rcpts) {
			return fail(want.Line, fmt.Sprintf("%d rcpt: %q", len(want.Rcpts), want.Rcpts), fmt.Sprintf("%d %q", len(g.Rcpts), g.Rcpts))
		}
		for j := range want.Rcpts {
			if !samePath(want.Rcpts[j], g.Rcpts[j]) {
				return fail(want.Line, "rcpt: "+want.Rcpts[j], "rcpt: "+g.Rcpts[j])
			}
		}
		if err := matchData(want.Data, g.Data); err != "" {
			return fail(want.Line, "message "+err, fmt.Sprintf("%q", g.Data))
		}
	}
	if len(got) > len(t.Deliveries) {
		line := len(t.Steps)
		if len(t.Steps) > 0 {
			line = t.Steps[len(t.Steps)-1].Line
		}
		extra := got[len(t.Deliveries)]
		return fail(line, fmt.Sprintf("%d deliveries", len(t.Deliveries)),
			fmt.Sprintf("%d, the next from %s to %q: %q", len(got), extra.Mail, extra.Rcpts, extra.Data))
	}
	return nil
}

// samePath compares "<path> PARAMS" forms, parameters as a set.
func samePath(want, got string) bool {
	w, g := strings.Fields(want), strings.Fields(got)
	if len(w) != len(g) || len(w) == 0 || w[0] != g[0] {
		return len(w) == 0 && len(g) == 0
	}
	sort.Strings(w[1:])
	sort.Strings(g[1:])
	for i := range w {
		if w[i] != g[i] {
			return false
		}
	}
	return true
}

// matchData returns "" when data matches parts, or a description of what
// was wanted where it did not.
func matchData(parts []DataPart, data []byte) string {
	for _, p := range parts {
		if p.Line == nil {
			if !bytes.HasPrefix(data, p.Exact) {
				return fmt.Sprintf("%q", p.Exact)
			}
			data = data[len(p.Exact):]
			continue
		}
		i := bytes.Index(data, []byte("\r\n"))
		if i < 0 || !p.Line.Match(data[:i+2]) {
			return "line matching " + p.Line.String()
		}
		data = data[i+2:]
	}
	if len(data) > 0 {
		return "nothing more"
	}
	return ""
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
