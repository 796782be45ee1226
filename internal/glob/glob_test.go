package glob

import (
	"strings"
	"testing"
)

func TestMatch(t *testing.T) {
	for _, tc := range []struct {
		pattern, s string
		want       bool
	}{
		{"", "", true},
		{"", "a", false},
		{"*", "", true},
		{"*", "anything@at.all", true},
		{"*@example.org", "bob@example.org", true},
		{"*@example.org", "bob@example.org.evil", false},
		{"*@example.org", "bob@sub.example.org", false},
		{"*@*.example.org", "bob@sub.example.org", true},
		{"b?b@*", "bob@x", true},
		{"b?b@*", "bb@x", false},
		{"?", "é", true}, // one character, not one byte
		{"*@EXAMPLE.org", "Bob@example.ORG", true},
		{"a*b*c", "aXbYbZc", true},
		{"a*b*c", "aXbYbZ", false},
		{"[192.0.2.1]", "[192.0.2.1]", true}, // brackets are not classes
		{`"a\b"@x`, `"a\b"@x`, true},         // backslash is not an escape
		{"**a", "bbba", true},
		{strings.Repeat("*a", 20) + "b", strings.Repeat("a", 60), false}, // no exponential backtracking
	} {
		if got := Match(tc.pattern, tc.s); got != tc.want {
			t.Errorf("Match(%q, %q) = %v, want %v", tc.pattern, tc.s, got, tc.want)
		}
	}
}

// FuzzMatch: Match never panics, "*" matches anything, and an ASCII
// pattern without wildcards matches itself in upper case.
func FuzzMatch(f *testing.F) {
	for _, seed := range [][2]string{{"*@example.org", "bob@example.org"}, {"b?b@*", "bob@x"}, {"?", "é"}, {"a*", "\xff"}} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, p, s string) {
		Match(p, s)
		if !Match("*", s) {
			t.Fatalf("* does not match %q", s)
		}
		ascii := strings.IndexFunc(s, func(r rune) bool { return r >= 0x80 }) < 0
		if ascii && !strings.ContainsAny(s, "*?") && !Match(s, strings.ToUpper(s)) {
			t.Fatalf("%q does not match its upper case", s)
		}
	})
}
