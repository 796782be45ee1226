package transcript

import (
	"bytes"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Error is a parse error at a line of a transcript.
type Error struct {
	Name string
	Line int
	Msg  string
}

func (e *Error) Error() string { return fmt.Sprintf("%s:%d: %s", e.Name, e.Line, e.Msg) }

// Parse parses a transcript. name is used in errors and becomes
// Transcript.Name. Files use LF line ends; a CR anywhere is an error, so
// that an editor's CRLF cannot change what a C: line sends.
//
// Placeholders (see [Vars]) take the in-process runner's values,
// [DefaultVars]; ParseVars gives others.
func Parse(name string, data []byte) (*Transcript, error) {
	return ParseVars(name, data, DefaultVars)
}

// ParseVars parses a transcript with the placeholders set to vars.
func ParseVars(name string, data []byte, vars Vars) (*Transcript, error) {
	p := &parser{t: &Transcript{Name: name}, vars: vars}
	if err := p.parse(data); err != nil {
		return nil, err
	}
	return p.t, nil
}

type parser struct {
	t    *Transcript
	vars Vars
	line int
	// part is where the parser is: 0 before ref:, 1 in the header, 2 in
	// the session, 3 in a delivery section.
	part int
}

func (p *parser) errorf(format string, args ...any) error {
	return &Error{Name: p.t.Name, Line: p.line, Msg: fmt.Sprintf(format, args...)}
}

func (p *parser) parse(data []byte) error {
	if bytes.IndexByte(data, '\r') >= 0 {
		p.line = 1 + bytes.Count(data[:bytes.IndexByte(data, '\r')], []byte("\n"))
		return p.errorf("CR in file: transcripts use LF line ends; write exact bytes with C! \"...\"")
	}
	text := string(data)
	if text != "" && !strings.HasSuffix(text, "\n") {
		text += "\n"
	}
	lines := strings.Split(text, "\n")
	lines = lines[:len(lines)-1]
	for i, l := range lines {
		p.line = i + 1
		if err := p.parseLine(l); err != nil {
			return err
		}
	}
	p.line = len(lines)
	switch {
	case p.t.Comment == "":
		return p.errorf("missing first line: a comment saying what the case checks")
	case p.part == 0:
		return p.errorf("missing ref: line")
	case len(p.t.Steps) == 0:
		return p.errorf("no session: a transcript needs at least one C: or S: line")
	}
	if last := p.lastReply(); last != nil && last.Lines[len(last.Lines)-1].More {
		return p.errorf("multiline reply not finished: its last S: line needs a space after the code")
	}
	for _, d := range p.t.Deliveries {
		if d.Mail == "" {
			p.line = d.Line
			return p.errorf("delivery without mail: line")
		}
	}
	return nil
}

func (p *parser) parseLine(l string) error {
	if p.line == 1 {
		if !strings.HasPrefix(l, "# ") || strings.TrimSpace(l[2:]) == "" {
			return p.errorf("the first line must be a comment (\"# ...\") saying what the case checks")
		}
		p.t.Comment = strings.TrimSpace(l[2:])
		return nil
	}
	if strings.TrimSpace(l) == "" || strings.HasPrefix(l, "#") {
		return nil
	}
	if p.part == 0 {
		ref, ok := strings.CutPrefix(l, "ref:")
		if !ok || strings.TrimSpace(ref) == "" {
			return p.errorf("want a ref: line naming the RFC section or advisory, got %q", l)
		}
		p.t.Ref = strings.TrimSpace(ref)
		p.part = 1
		return nil
	}
	if l == "== delivery" {
		p.part = 3
		p.t.Deliveries = append(p.t.Deliveries, Delivery{Line: p.line})
		return nil
	}
	if p.part == 3 {
		return p.deliveryLine(l)
	}
	count, rest, err := p.repeat(l)
	if err != nil {
		return err
	}
	if p.part == 1 && count == 1 && !isSessionLine(rest) {
		return p.headerLine(l)
	}
	p.part = 2
	return p.sessionLine(count, rest)
}

// repeat splits off a repeat count, "100* C: ...".
func (p *parser) repeat(l string) (int, string, error) {
	i := 0
	for i < len(l) && '0' <= l[i] && l[i] <= '9' {
		i++
	}
	if i == 0 || i+1 >= len(l) || l[i] != '*' || l[i+1] != ' ' {
		return 1, l, nil
	}
	n, err := strconv.Atoi(l[:i])
	if err != nil || n < 1 || n > 100000 {
		return 0, "", p.errorf("bad repeat count %q (1 to 100000)", l[:i])
	}
	return n, l[i+2:], nil
}

var sessionPrefixes = []string{"C:", "C!", "S:", "S+", "S-"}
var events = []string{"segment", "pause", "closed", "silent", "close", "starttls", "shutdown"}

func isSessionLine(l string) bool {
	for _, pre := range sessionPrefixes {
		if strings.HasPrefix(l, pre) {
			return true
		}
	}
	word, _, _ := strings.Cut(l, " ")
	for _, e := range events {
		if word == e {
			return true
		}
	}
	return false
}

func (p *parser) headerLine(l string) error {
	key, value, ok := strings.Cut(l, ":")
	if !ok {
		return p.errorf("want a header line \"key: value\" or a session line, got %q", l)
	}
	if _, known := Keys[key]; !known {
		return p.errorf("unknown header key %q", key)
	}
	value = strings.TrimSpace(value)
	if allowed, ok := keyValues[key]; ok && !slices.Contains(allowed, value) {
		return p.errorf("%s: wants one of %s, got %q", key, strings.Join(allowed, ", "), value)
	}
	p.t.Header = append(p.t.Header, Field{Key: key, Value: value, Line: p.line})
	return nil
}

func (p *parser) sessionLine(count int, l string) error {
	add := func(s Step) {
		s.Line = p.line
		for i := 0; i < count; i++ {
			p.t.Steps = append(p.t.Steps, s)
		}
	}
	prefix := l[:min(2, len(l))]
	if last := p.lastReply(); prefix != "S:" && last != nil && last.Lines[len(last.Lines)-1].More {
		return p.errorf("multiline reply not finished: its last S: line needs a space after the code")
	}
	switch prefix {
	case "C:":
		text, err := p.expand(textAfter(l), false)
		if err != nil {
			return err
		}
		add(Step{Kind: Send, Data: []byte(text + "\r\n")})
		return nil
	case "C!":
		b, err := p.bytesExpr(strings.TrimSpace(l[2:]))
		if err != nil {
			return err
		}
		if len(b) == 0 {
			return p.errorf("C! sends nothing")
		}
		add(Step{Kind: Send, Data: b})
		return nil
	case "S:":
		text, err := p.expand(textAfter(l), true)
		if err != nil {
			return err
		}
		lp, err := p.linePattern(text)
		if err != nil {
			return err
		}
		if lp.orClosed && (len(lp.Codes) == 0 || lp.More || count != 1) {
			return p.errorf("closed is an alternative to a one-line reply: S: 5xx|closed")
		}
		// A continuation line opens a reply that the following S: lines
		// complete; they fold into one Expect step.
		if n := len(p.t.Steps); n > 0 && p.t.Steps[n-1].Kind == Expect {
			last := &p.t.Steps[n-1].Reply
			if last.Lines[len(last.Lines)-1].More {
				if count != 1 {
					return p.errorf("a repeat count cannot continue a multiline reply")
				}
				last.Lines = append(last.Lines, lp)
				return nil
			}
		}
		add(Step{Kind: Expect, Reply: ReplyPattern{Lines: []LinePattern{lp}, OrClosed: lp.orClosed}})
		return nil
	case "S+", "S-":
		text, err := p.expand(textAfter(l), true)
		if err != nil {
			return err
		}
		re, err := regexp.Compile("^(?:" + text + ")$")
		if err != nil {
			return p.errorf("bad pattern: %v", err)
		}
		if n := len(p.t.Steps); n == 0 || p.t.Steps[n-1].Kind != Expect && p.t.Steps[n-1].Kind != Contains && p.t.Steps[n-1].Kind != Lacks {
			return p.errorf("%s must follow an S: line", prefix)
		}
		kind := Contains
		if prefix == "S-" {
			kind = Lacks
		}
		add(Step{Kind: kind, Pattern: re})
		return nil
	}
	return p.event(add, l)
}

func (p *parser) lastReply() *ReplyPattern {
	for i := len(p.t.Steps) - 1; i >= 0; i-- {
		if p.t.Steps[i].Kind == Expect {
			return &p.t.Steps[i].Reply
		}
	}
	return nil
}

func (p *parser) event(add func(Step), l string) error {
	f := strings.Fields(l)
	if len(f) == 0 {
		return p.errorf("a repeat count needs a line after it")
	}
	dur := func(word string) (time.Duration, error) {
		if len(f) != 3 || f[1] != word {
			return 0, p.errorf("want %q, got %q", f[0]+" "+word+" DURATION", l)
		}
		d, err := time.ParseDuration(f[2])
		if err != nil || d <= 0 || d > time.Minute {
			return 0, p.errorf("bad duration %q (a Go duration up to 1m)", f[2])
		}
		return d, nil
	}
	var s Step
	var err error
	switch f[0] {
	case "segment", "close", "starttls", "shutdown":
		if len(f) != 1 {
			return p.errorf("%s takes no argument", f[0])
		}
		s.Kind = map[string]Kind{"segment": Segment, "close": Close, "starttls": StartTLS, "shutdown": Shutdown}[f[0]]
	case "pause":
		if len(f) != 2 {
			return p.errorf("want \"pause DURATION\", got %q", l)
		}
		f = []string{"pause", "", f[1]}
		s.Kind = Pause
		s.Duration, err = dur("")
	case "closed":
		s.Kind = Closed
		s.Duration, err = dur("within")
	case "silent":
		s.Kind = Silent
		s.Duration, err = dur("for")
	default:
		return p.errorf("unknown session line %q", l)
	}
	if err != nil {
		return err
	}
	add(s)
	return nil
}

// textAfter returns what follows a two-character prefix and one optional
// space: "C: NOOP" and "C:NOOP" both give "NOOP"; "C:" gives "".
func textAfter(l string) string {
	s := l[2:]
	return strings.TrimPrefix(s, " ")
}

// bytesExpr parses exact bytes: Go-quoted strings joined by "+", each
// optionally repeated with "* N": "\"x\" * 998 + \"\r\n\"".
func (p *parser) bytesExpr(s string) ([]byte, error) {
	var out []byte
	for {
		q, err := strconv.QuotedPrefix(s)
		if err != nil || q[0] == '\'' {
			return nil, p.errorf("want a Go double-quoted or backquoted string, got %q", s)
		}
		v, _ := strconv.Unquote(q)
		if v, err = p.expand(v, false); err != nil {
			return nil, err
		}
		s = strings.TrimLeft(s[len(q):], " ")
		n := 1
		if rest, ok := strings.CutPrefix(s, "*"); ok {
			rest = strings.TrimLeft(rest, " ")
			i := 0
			for i < len(rest) && '0' <= rest[i] && rest[i] <= '9' {
				i++
			}
			n, err = strconv.Atoi(rest[:i])
			if err != nil || n < 0 || n > 1<<24 || len(out)+n*len(v) > 1<<26 {
				return nil, p.errorf("bad repeat count in %q", s)
			}
			s = strings.TrimLeft(rest[i:], " ")
		}
		out = append(out, strings.Repeat(v, n)...)
		if s == "" {
			return out, nil
		}
		rest, ok := strings.CutPrefix(s, "+")
		if !ok {
			return nil, p.errorf("want \"+\" or the end after a string, got %q", s)
		}
		s = strings.TrimLeft(rest, " ")
	}
}

var (
	codeRe     = regexp.MustCompile(`^[2-5x][0-9x][0-9x]$`)
	enhancedRe = regexp.MustCompile(`^[245x]\.(?:[0-9]{1,3}|x)\.(?:[0-9]{1,3}|x)$`)
)

// linePattern parses what follows "S: ": CODE[|CODE...] then "-" for a
// continuation line or a space, an optional enhanced code, and an
// optional text pattern.
func (p *parser) linePattern(s string) (LinePattern, error) {
	lp := LinePattern{Line: p.line}
	i := strings.IndexAny(s, " -")
	if i < 0 {
		i = len(s)
	}
	for _, c := range strings.Split(s[:i], "|") {
		if c == "closed" {
			lp.orClosed = true
			continue
		}
		if !codeRe.MatchString(c) {
			return lp, p.errorf("bad reply code %q (want three digits, x for any, alternatives joined by |)", c)
		}
		lp.Codes = append(lp.Codes, c)
	}
	if i < len(s) && s[i] == '-' {
		lp.More = true
	}
	rest := ""
	if i < len(s) {
		rest = s[i+1:]
	}
	if word, after, _ := strings.Cut(rest, " "); enhancedRe.MatchString(word) {
		lp.Enhanced, rest = word, after
	}
	if rest != "" {
		re, err := regexp.Compile(rest)
		if err != nil {
			return lp, p.errorf("bad text pattern: %v", err)
		}
		lp.Text = re
	}
	return lp, nil
}

func (p *parser) deliveryLine(l string) error {
	d := &p.t.Deliveries[len(p.t.Deliveries)-1]
	count, l, err := p.repeat(l)
	if err != nil {
		return err
	}
	prefix, value, _ := strings.Cut(l, ":")
	if strings.HasPrefix(l, "D!") || strings.HasPrefix(l, "D~") {
		prefix, value = l[:2], l[2:]
	}
	value = strings.TrimPrefix(value, " ")
	if prefix != "D!" { // D! strings are expanded after unquoting
		if value, err = p.expand(value, prefix == "D~"); err != nil {
			return err
		}
	}
	if count != 1 && prefix != "rcpt" && prefix != "D" && prefix != "D!" {
		return p.errorf("a repeat count works on rcpt:, D: and D! lines only")
	}
	for i := 0; i < count; i++ {
		switch prefix {
		case "hello":
			d.Hello = value
		case "tls":
			if value != "yes" && value != "no" {
				return p.errorf("tls: wants yes or no, got %q", value)
			}
			d.TLS = value
		case "auth":
			if value == "" {
				return p.errorf("auth: wants an identity")
			}
			d.Auth = value
		case "mail":
			if d.Mail != "" {
				return p.errorf("a delivery has one mail: line")
			}
			if !strings.HasPrefix(value, "<") {
				return p.errorf("mail: wants a path in angle brackets, got %q", value)
			}
			d.Mail = value
		case "rcpt":
			if !strings.HasPrefix(value, "<") {
				return p.errorf("rcpt: wants a path in angle brackets, got %q", value)
			}
			d.Rcpts = append(d.Rcpts, value)
		case "D":
			d.Data = appendExact(d.Data, []byte(value+"\r\n"))
		case "D!":
			b, err := p.bytesExpr(strings.TrimSpace(value))
			if err != nil {
				return err
			}
			d.Data = appendExact(d.Data, b)
		case "D~":
			re, err := regexp.Compile("^(?:" + value + ")\r\n$")
			if err != nil {
				return p.errorf("bad pattern: %v", err)
			}
			d.Data = append(d.Data, DataPart{Line: re})
		default:
			return p.errorf("want hello:, tls:, auth:, mail:, rcpt:, D:, D! or D~ in a delivery, got %q", l)
		}
	}
	return nil
}

// appendExact appends b to the parts, merging it with exact bytes before.
func appendExact(parts []DataPart, b []byte) []DataPart {
	if n := len(parts); n > 0 && parts[n-1].Line == nil {
		parts[n-1].Exact = append(parts[n-1].Exact, b...)
		return parts
	}
	return append(parts, DataPart{Exact: append([]byte(nil), b...)})
}
