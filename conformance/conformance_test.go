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

// TestReservedKeysFailLoudly: a case that needs an extension the runner
// cannot set up fails, and names what it needs; an unknown key does not
// even parse. Neither may pass by being ignored.
func TestReservedKeysFailLoudly(t *testing.T) {
	tr, err := transcript.Parse("starttls_x.txt", []byte("# c.\nref: RFC 3207\ntls: on\n\nS: 220\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := RunLocal(tr); err == nil || !strings.Contains(err.Error(), "needs STARTTLS") {
		t.Errorf("RunLocal = %v, want a failure naming STARTTLS", err)
	}
	if why := Skip(tr, Extensions{"STARTTLS": ""}); why == "" {
		t.Error("smtpconform would run a case whose TLS setup it cannot make")
	}
	if _, err := transcript.Parse("x.txt", []byte("# c.\nref: r\nmax-frobs: 1\n\nS: 220\n")); err == nil {
		t.Error("an unknown header key parsed")
	}
}
