// Package glob matches the shell-like patterns of cmd/smtpd's policy flags
// and of the conformance suite's headers: "*" matches any run of
// characters, "?" one character (not one byte), anything else itself,
// ignoring case, as addresses' domains are compared (RFC 5321 2.4).
// Nothing else is special, unlike path.Match, since "[" and "\" are
// ordinary characters in addresses (address literals, quoted local-parts).
package glob

import (
	"strings"
	"unicode/utf8"
)

// Match reports whether s matches the pattern p, ignoring case. It
// backtracks only to the last "*", which is enough for patterns of "*"
// and "?" and keeps the time linear in len(p)*len(s) at worst, whatever a
// client sends.
func Match(p, s string) bool {
	p, s = strings.ToLower(p), strings.ToLower(s)
	var pi, si int
	star, mark := -1, 0 // the last "*" in p, and where in s it began to match
	for si < len(s) {
		if pi < len(p) {
			switch c, n := utf8.DecodeRuneInString(p[pi:]); c {
			case '*':
				star, mark = pi, si
				pi++
				continue
			case '?':
				_, sn := utf8.DecodeRuneInString(s[si:])
				pi, si = pi+n, si+sn
				continue
			default:
				if strings.HasPrefix(s[si:], p[pi:pi+n]) {
					pi, si = pi+n, si+n
					continue
				}
			}
		}
		if star < 0 {
			return false
		}
		// Let the last "*" swallow one more character and try again.
		_, sn := utf8.DecodeRuneInString(s[mark:])
		mark += sn
		pi, si = star+1, mark
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}
