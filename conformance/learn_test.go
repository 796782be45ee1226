package conformance

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"smtpd/internal/transcript"
)

// TestLearnSession replays the session that smtpd/LEARN.md walks through:
// its smtp blocks, in order, are one transcript. The page says what the
// server does only as long as this passes. Each transcript the page
// points to must exist.
func TestLearnSession(t *testing.T) {
	page, err := os.ReadFile("../smtpd/LEARN.md")
	if err != nil {
		t.Fatal(err)
	}
	var session strings.Builder
	blocks := regexp.MustCompile("(?s)```smtp\n(.*?)```").FindAllSubmatch(page, -1)
	for _, b := range blocks {
		session.Write(b[1])
	}
	if len(blocks) < 8 {
		t.Fatalf("LEARN.md has %d smtp blocks; the walk-through has more", len(blocks))
	}
	tr, err := transcript.Parse("LEARN.md", []byte(session.String()))
	if err != nil {
		t.Fatal(err)
	}
	if len(tr.Deliveries) != 1 {
		t.Fatalf("LEARN.md's session expects %d deliveries, want the one it explains", len(tr.Deliveries))
	}
	if err := RunLocal(tr); err != nil {
		t.Error(err)
	}

	for _, m := range regexp.MustCompile("`((?:[a-z0-9]+_)+[a-z0-9]+)`").FindAllSubmatch(page, -1) {
		name := string(m[1])
		if _, err := os.Stat("testdata/" + name + ".txt"); err != nil {
			t.Errorf("LEARN.md points to %s, which is not in testdata", name)
		}
	}
}
