package conformance

import (
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"

	"smtpd/internal/transcript"
)

//go:embed testdata/*.txt
var files embed.FS

// Load parses every transcript of the suite, sorted by name.
func Load() ([]*transcript.Transcript, error) {
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
		t, err := transcript.Parse(path.Base(n), b)
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
// flags say it is set up for.
type Target struct {
	// Ext is what the EHLO reply offers in the clear; TLSExt what it
	// offers after STARTTLS (nil when STARTTLS was not offered or the
	// handshake failed).
	Ext, TLSExt Extensions
	// Auth is the USER:PASSWORD list the target accepts (-auth); a case
	// with an auth key runs only when its value is exactly this.
	Auth string
	// ImplicitTLS is set when an implicit-TLS port was given (-tls-addr);
	// ImplicitExt is what the EHLO reply offers there.
	ImplicitTLS bool
	ImplicitExt Extensions
	// LMTP is set when the target speaks LMTP (-lmtp): only the LMTP
	// cases run, and no other.
	LMTP bool
}

// Skip returns why t cannot be replayed against target, or "" when it
// can. Server configuration (limits, callbacks that refuse, timeouts)
// cannot be set from outside, so a case that needs any is skipped, except
// for what target says the server is set up for: STARTTLS or implicit TLS
// (tls), accounts (auth), LMTP (lmtp). A case that needs an extension the
// server does not offer is skipped too; a case with a starttls event may
// find its keywords in the EHLO reply after STARTTLS, and an implicit-TLS
// case looks for them in the EHLO reply of that port. "needs: AUTH=PLAIN"
// asks for the PLAIN mechanism among AUTH's parameters.
func Skip(t *transcript.Transcript, target Target) string {
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
		case f.Key == "auth" && f.Value != target.Auth:
			return fmt.Sprintf("needs the accounts %s on the server (smtpconform -auth %s)", f.Value, f.Value)
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
	tlsCase, implicit := false, false
	if v, _ := t.Get("tls"); v == "implicit" {
		implicit = true
	}
	for _, s := range t.Steps {
		switch s.Kind {
		case transcript.StartTLS:
			tlsCase = true
		case transcript.Shutdown:
			return "shuts the server down, which only the in-process runner can"
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
