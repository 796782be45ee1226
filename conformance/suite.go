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

// Skip returns why t cannot be replayed against a server on the network
// that offers ext, or "" when it can. Server configuration (limits,
// callbacks that refuse, timeouts) cannot be set from outside, so a case
// that needs any is skipped; so is one that needs an extension the server
// does not offer.
func Skip(t *transcript.Transcript, ext Extensions) string {
	for _, f := range t.Header {
		if k := transcript.Keys[f.Key]; k.Extension != "" {
			return fmt.Sprintf("needs %s set up on the server (%s: %s)", k.Extension, f.Key, f.Value)
		} else if k.Config {
			return fmt.Sprintf("needs server configuration %s: %s", f.Key, f.Value)
		}
	}
	if needs, ok := t.Get("needs"); ok {
		for _, kw := range strings.Fields(needs) {
			if _, ok := ext[strings.ToUpper(kw)]; !ok {
				return "server does not offer " + kw
			}
		}
	}
	return ""
}
