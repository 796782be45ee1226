package conformance

import (
	"strings"
	"testing"

	"smtpd/internal/transcript"
)

// TestTranscripts replays every transcript against the in-process server.
// A failure names the transcript's file and line, what it wanted and what
// came.
func TestTranscripts(t *testing.T) {
	suite, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	if len(suite) == 0 {
		t.Fatal("no transcripts in testdata")
	}
	for _, tr := range suite {
		t.Run(tr.Name, func(t *testing.T) {
			t.Parallel()
			if err := RunLocal(tr); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestSkip: what a remote target can and cannot be held to; an unknown
// key does not even parse, so no case passes by being ignored.
func TestSkip(t *testing.T) {
	parse := func(src string) *transcript.Transcript {
		t.Helper()
		tr, err := transcript.Parse("x.txt", []byte("# c.\nref: r\n"+src))
		if err != nil {
			t.Fatal(err)
		}
		return tr
	}
	plain := Target{Ext: Extensions{"PIPELINING": ""}}
	withTLS := Target{Ext: Extensions{"STARTTLS": ""}, TLSExt: Extensions{"AUTH": "LOGIN PLAIN"}, Auth: "jane:secret"}
	for _, tc := range []struct {
		src    string
		target Target
		skip   string // "" to run
	}{
		{"S: 220\n", plain, ""},
		{"max-recipients: 2\nS: 220\n", plain, "configuration"},
		{"tls: starttls\nS: 220\n", plain, "STARTTLS"},
		{"tls: starttls\nS: 220\n", withTLS, ""},
		{"tls: implicit\nS: 220\n", withTLS, "-tls-addr"},
		{"tls: implicit\nS: 220\n", Target{ImplicitTLS: true}, ""},
		{"tls: implicit\nneeds: AUTH\nS: 220\n", Target{ImplicitTLS: true, ImplicitExt: Extensions{"AUTH": "PLAIN"}}, ""},
		{"tls: implicit\nneeds: AUTH\nS: 220\n", Target{ImplicitTLS: true, Ext: Extensions{"AUTH": "PLAIN"}}, "AUTH"},
		{"auth: jane:secret\nneeds: AUTH=PLAIN\nS: 220\nstarttls\n", withTLS, ""},
		{"auth: jane:secret\nneeds: AUTH=PLAIN\nS: 220\n", withTLS, "AUTH=PLAIN"},
		{"auth: jane:secret\nneeds: AUTH=CRAM-MD5\nS: 220\nstarttls\n", withTLS, "AUTH=CRAM-MD5"},
		{"auth: joe:x\nS: 220\n", withTLS, "-auth joe:x"},
		{"auth: jane:secret\nauth-insecure: yes\nS: 220\n", withTLS, "configuration"},
		{"lmtp: yes\nS: 220\n", plain, "-lmtp"},
		{"lmtp: yes\nS: 220\n", Target{LMTP: true}, ""},
		{"S: 220\n", Target{LMTP: true}, "LMTP"},
		{"S: 220\nshutdown\n", plain, "in-process"},
	} {
		why := Skip(parse(tc.src), tc.target)
		if tc.skip == "" && why != "" || tc.skip != "" && !strings.Contains(why, tc.skip) {
			t.Errorf("%q: Skip = %q, want %q", tc.src, why, tc.skip)
		}
	}
	if _, err := transcript.Parse("x.txt", []byte("# c.\nref: r\nmax-frobs: 1\n\nS: 220\n")); err == nil {
		t.Error("an unknown header key parsed")
	}
}
