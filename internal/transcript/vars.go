package transcript

import (
	"encoding/base64"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Vars are the values of the placeholders a transcript may write in its
// session and delivery lines, so that the same case runs against the
// in-process server and against somebody's production server with the
// addresses its administrator chose (smtpconform -mail-from, -rcpt,
// -rcpt-refused) and with every message it sends marked.
//
//	${from}     the reverse-path's address (MAIL FROM)
//	${rcpt}     the main recipient, an address the target accepts
//	${rcpt2}    a second accepted recipient, for cases that need two
//	${refused}  a recipient the target refuses (RCPT gets 5xx)
//	${mark}     a header field naming the case and the run, CRLF included;
//	            every message a case sends starts with it
//	${tag}      a prefix for the Subject field's text
//	${mark+N}   the length of ${mark} plus N, in decimal: a BDAT size
//	${mark+tag+N}  the lengths of ${mark} and ${tag} plus N: the size of
//	            a BDAT chunk that holds both
//	${user}, ${password}       an account the target accepts (AUTH)
//	${user64}, ${password64}   the same, base64-encoded (AUTH LOGIN)
//	${plain}    base64 of NUL user NUL password (AUTH PLAIN, RFC 4616)
//
// In S: lines a value is matched literally (regexp.QuoteMeta).
type Vars struct {
	From    string
	Rcpt    string
	Rcpt2   string
	Refused string
	// User and Password are an account the target accepts.
	User, Password string
	// Run names the run in ${mark} and ${tag}. Empty means no marking:
	// both placeholders are empty, as for the in-process server, so that
	// its deliveries compare with the case's bytes as written.
	Run string
}

// DefaultVars are the values the in-process runner uses: the addresses the
// suite was written with, and no marking.
var DefaultVars = Vars{
	From:     "alice@example.org",
	Rcpt:     "bob@example.net",
	Rcpt2:    "carol@example.net",
	Refused:  "nobody@refused.example",
	User:     "jane",
	Password: "secret",
}

// Uses records which placeholders a transcript writes, so that a runner
// can skip a case whose values it was not given.
type Uses struct {
	Rcpt2, Refused, Mark, Account bool
}

var placeholderRe = regexp.MustCompile(`\$\{[^}]*\}`)

// mark is the value of ${mark} for the case name.
func (v Vars) mark(name string) string {
	if v.Run == "" {
		return ""
	}
	return "X-Smtpconform: " + strings.TrimSuffix(name, ".txt") + "; run=" + v.Run + "\r\n"
}

func (v Vars) tag() string {
	if v.Run == "" {
		return ""
	}
	return "[smtpconform] "
}

// expand replaces the placeholders in s. quote makes the values literal
// for a regular expression (S: lines).
func (p *parser) expand(s string, quote bool) (string, error) {
	if !strings.Contains(s, "${") {
		return s, nil
	}
	var err error
	out := placeholderRe.ReplaceAllStringFunc(s, func(ph string) string {
		v, e := p.value(ph[2 : len(ph)-1])
		if e != nil && err == nil {
			err = e
		}
		if quote {
			return regexp.QuoteMeta(v)
		}
		return v
	})
	if err == nil && strings.Contains(out, "${") && !quote {
		err = p.errorf("unfinished placeholder in %q", s)
	}
	return out, err
}

func (p *parser) value(name string) (string, error) {
	v := p.vars
	switch name {
	case "from":
		return v.From, nil
	case "rcpt":
		return v.Rcpt, nil
	case "rcpt2":
		p.t.Uses.Rcpt2 = true
		return v.Rcpt2, nil
	case "refused":
		p.t.Uses.Refused = true
		return v.Refused, nil
	case "mark":
		p.t.Uses.Mark = true
		return v.mark(p.t.Name), nil
	case "tag":
		return v.tag(), nil
	case "user", "password", "user64", "password64", "plain":
		p.t.Uses.Account = true
		b64 := base64.StdEncoding.EncodeToString
		return map[string]string{
			"user": v.User, "password": v.Password,
			"user64": b64([]byte(v.User)), "password64": b64([]byte(v.Password)),
			"plain": b64([]byte("\x00" + v.User + "\x00" + v.Password)),
		}[name], nil
	}
	if n, ok := strings.CutPrefix(name, "mark+tag+"); ok {
		if k, err := strconv.Atoi(n); err == nil && k >= 0 {
			return strconv.Itoa(len(v.mark(p.t.Name)) + len(v.tag()) + k), nil
		}
	} else if n, ok := strings.CutPrefix(name, "mark+"); ok {
		if k, err := strconv.Atoi(n); err == nil && k >= 0 {
			return strconv.Itoa(len(v.mark(p.t.Name)) + k), nil
		}
	}
	return "", p.errorf("unknown placeholder ${%s} (want from, rcpt, rcpt2, refused, mark, tag, mark+N, mark+tag+N, user, password, user64, password64 or plain)", name)
}

// CheckAddress reports whether addr can stand for a placeholder: a
// mailbox (RFC 5321 4.1.2) with no space, quote, backslash, bracket or
// control character, so that it reads the same in every line kind.
func CheckAddress(addr string) error {
	local, domain, ok := strings.Cut(addr, "@")
	if !ok || local == "" || domain == "" || strings.Contains(domain, "@") {
		return fmt.Errorf("%q is not local-part@domain", addr)
	}
	for _, c := range addr {
		if c <= ' ' || c == 0x7f || strings.ContainsRune(`"\<>()[],;:`, c) {
			return fmt.Errorf("%q: %q is not allowed in an address given on the command line", addr, c)
		}
	}
	return nil
}
