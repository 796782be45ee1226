package conformance

import (
	"testing"
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
