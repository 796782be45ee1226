package conformance

import (
	"embed"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strings"

	"smtpd/internal/transcript"
)

//go:embed testdata/*.txt
var files embed.FS

// Load parses every transcript of the suite, sorted by name, with the
// in-process runner's values for the placeholders.
func Load() ([]*transcript.Transcript, error) {
	return LoadVars(transcript.DefaultVars)
}

// LoadVars parses every transcript with the placeholders set to vars.
func LoadVars(vars transcript.Vars) ([]*transcript.Transcript, error) {
	names, err := fs.Glob(files, "testdata/*.txt")
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	var out []*transcript.Transcript
	for _, n := range names {
		b, err := files.ReadFile(n)
		if err != nil {
			return nil, err
		}
		t, err := transcript.ParseVars(path.Base(n), b, vars)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

// Extensions are the EHLO keywords a server offers, upper case, each with
// its parameters (RFC 5321 4.1.1.1: "SIZE 1000" gives SIZE -> "1000").
type Extensions map[string]string

// ParseEHLO reads the extensions from the lines of an EHLO reply; the first
// line is the server's name.
func ParseEHLO(reply []string) Extensions {
	ext := make(Extensions)
	for i, l := range reply {
		if i == 0 || len(l) < 4 {
			continue
		}
		kw, params, _ := strings.Cut(l[4:], " ")
		ext[strings.ToUpper(kw)] = params
	}
	return ext
}

// Target is what smtpconform knows about a server on the network: what
// its EHLO reply offers, in the clear and after STARTTLS, and what its
// flags say it is set up for and what they allow.
type Target struct {
	// Ext is what the EHLO reply offers in the clear; TLSExt what it
	// offers after STARTTLS (nil when STARTTLS was not offered or the
	// handshake failed).
	Ext, TLSExt Extensions
	// TLSFailed says why the probe could not start TLS although
	// STARTTLS was offered; the cases that start TLS are skipped with
	// it, since a certificate the checker does not trust says nothing
	// about conformance.
	TLSFailed string
	// Auth is the account the target accepts (-auth user:password);
	// empty when none was given.
	Auth string
	// ImplicitTLS is set when an implicit-TLS port was given (-tls-addr);
	// ImplicitExt is what the EHLO reply offers there.
	ImplicitTLS bool
	ImplicitExt Extensions
	// LMTP is set when the target speaks LMTP (-lmtp): only the LMTP
	// cases run, and no other.
	LMTP bool
	// Strict runs the strict-profile cases too (-profile strict).
	Strict bool
	// Sink says the target accepts any address (-sink).
	Sink bool
	// Rcpt2 and Refused say a second accepted recipient and a refused
	// one were given (-rcpt twice, -rcpt-refused).
	Rcpt2, Refused bool
	// Deliver lets the cases that may complete a message run
	// (-deliver); Rcpt names where they deliver, for the skip reason.
	Deliver bool
	Rcpt    string
}

// Skip returns why t cannot be replayed against target, or "" when it
// can. Server configuration (limits, callbacks that refuse, timeouts)
// cannot be set from outside, so a case that needs any is skipped, except
// for what target says the server is set up for: STARTTLS or implicit TLS
// (tls), accounts (auth), LMTP (lmtp). A case that needs an extension the
// server does not offer is skipped too; a case with a starttls event may
// find its keywords in the EHLO reply after STARTTLS, and an implicit-TLS
// case looks for them in the EHLO reply of that port. "needs: AUTH=PLAIN"
// asks for the PLAIN mechanism among AUTH's parameters. Then come what
// the administrator decides: the strict profile, sink cases, the second
// and the refused recipient, and last the cases that may deliver a
// message, so that "needs -deliver" is said only of cases that would run.
func Skip(t *transcript.Transcript, target Target) string {
	if why := skipConfig(t, target); why != "" {
		return why
	}
	tlsCase := false
	for _, s := range t.Steps {
		switch s.Kind {
		case transcript.StartTLS:
			tlsCase = true
		case transcript.Shutdown:
			return "shuts the server down, which only the in-process runner can"
		}
	}
	implicit := false
	if v, _ := t.Get("tls"); v == "implicit" {
		implicit = true
	}
	if tlsCase && target.TLSFailed != "" {
		return target.TLSFailed
	}
	if v, ok := t.Get("auth"); ok && v != "none" {
		inClear := offers(target.Ext, "AUTH") && !implicit
		if !inClear && !(tlsCase && offers(target.TLSExt, "AUTH")) && !(implicit && offers(target.ImplicitExt, "AUTH")) {
			return "server does not offer AUTH"
		}
	}
	if needs, ok := t.Get("needs"); ok {
		for _, kw := range strings.Fields(needs) {
			if implicit && !offers(target.ImplicitExt, kw) ||
				!implicit && !offers(target.Ext, kw) && !(tlsCase && offers(target.TLSExt, kw)) {
				return "server does not offer " + kw
			}
		}
	}
	_, sink := t.Get("sink")
	switch {
	case Strict(t) && !target.Strict:
		return "strict profile: checks a choice the RFC leaves to the server (smtpconform -profile strict)"
	case sink && !target.Sink:
		return "needs a server that accepts any address, a sink (smtpconform -sink)"
	case t.Uses.Rcpt2 && !target.Rcpt2:
		return "needs a second accepted recipient (a second -rcpt)"
	case t.Uses.Refused && !target.Refused:
		return "needs a recipient the server refuses (-rcpt-refused)"
	case MayDeliver(t) && !target.Deliver:
		return fmt.Sprintf("needs -deliver (delivers %d messages to %s)", len(t.Deliveries), target.Rcpt)
	}
	return ""
}

// skipConfig returns why the server configuration t's header asks for
// cannot be had from target.
func skipConfig(t *transcript.Transcript, target Target) string {
	lmtp := false
	for _, f := range t.Header {
		k := transcript.Keys[f.Key]
		switch {
		case f.Key == "tls" && f.Value == "implicit" && !target.ImplicitTLS:
			return "needs an implicit-TLS port (smtpconform -tls-addr)"
		case f.Key == "tls" && f.Value == "starttls":
			if _, ok := target.Ext["STARTTLS"]; !ok {
				return "server does not offer STARTTLS"
			}
		case f.Key == "tls" && f.Value == "none":
			if _, ok := target.Ext["STARTTLS"]; ok {
				return "a case for a server without TLS; this one offers STARTTLS"
			}
		case f.Key == "auth" && f.Value == "none":
			if offers(target.Ext, "AUTH") || offers(target.TLSExt, "AUTH") {
				return "a case for a server without AUTH; this one offers it"
			}
		case f.Key == "auth" && strings.Contains(f.Value, "********"):
			return "a recording whose password is masked; it replays only in-process"
		case f.Key == "auth" && t.Uses.Account && target.Auth == "":
			return "needs an account the server accepts (smtpconform -auth user:password)"
		case f.Key == "lmtp":
			lmtp = f.Value == "yes" || f.Value == "on"
			if lmtp && !target.LMTP {
				return "needs an LMTP server (smtpconform -lmtp)"
			}
		case k.Config && (!k.Remote || f.Key == "tls" && f.Value == "no-certificate"):
			return fmt.Sprintf("needs server configuration %s: %s", f.Key, f.Value)
		}
	}
	if target.LMTP && !lmtp {
		return "an SMTP case; the target speaks LMTP"
	}
	return ""
}

// offers reports whether ext has kw, "KEYWORD" or "KEYWORD=PARAM" (a
// parameter of the keyword, as AUTH=PLAIN).
func offers(ext Extensions, kw string) bool {
	kw, param, hasParam := strings.Cut(strings.ToUpper(kw), "=")
	params, ok := ext[kw]
	if !ok || !hasParam {
		return ok
	}
	for _, p := range strings.Fields(strings.ToUpper(params)) {
		if p == param {
			return true
		}
	}
	return false
}

// Source returns the text of the named case as it is written, placeholders
// and all (smtpconform -show).
func Source(name string) ([]byte, error) {
	return files.ReadFile("testdata/" + strings.TrimSuffix(name, ".txt") + ".txt")
}

// Level is the requirement a case checks: "MUST", "SHOULD" or "policy".
func Level(t *transcript.Transcript) string {
	v, _ := t.Get("level")
	return v
}

// Strict reports whether the case belongs to the strict profile: it checks
// one of this server's choices where the RFC lets a server choose.
func Strict(t *transcript.Transcript) bool {
	v, _ := t.Get("profile")
	return v == "strict"
}

var (
	dataCommand = regexp.MustCompile(`(?i)(?:^|\n)DATA\r?\n`)
	// Any line end around a lone dot: a server that does not conform
	// may take a bare CR or LF for one (SMTP smuggling).
	endOfData = regexp.MustCompile(`[\r\n]\.[\r\n]`)
	bdatLast  = regexp.MustCompile(`(?i)BDAT +[0-9]+ +LAST`) // anywhere: after a chunk, data and command meet
)

// MayDeliver reports whether replaying t could complete a message on some
// server: its client sends DATA and then a line holding a lone dot, with
// any line ends, or a BDAT LAST chunk. It looks at the bytes, not at the
// replies the case expects, because a server that does not conform may
// accept what the case expects it to refuse; smtpconform runs such cases
// only with -deliver.
func MayDeliver(t *transcript.Transcript) bool {
	var sent []byte
	for _, s := range t.Steps {
		if s.Kind == transcript.Send {
			sent = append(sent, s.Data...)
		}
	}
	if bdatLast.Match(sent) {
		return true
	}
	loc := dataCommand.FindIndex(sent)
	return loc != nil && endOfData.Match(sent[loc[1]-1:])
}
