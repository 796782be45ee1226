package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// -exec: the command's exit status decides. A command that stored the
// message and exited 0, leaving a background child that holds its output
// open, gets 250; a 451 would make the client send it again, and the
// message would be stored twice.
func TestExecExitStatusDecides(t *testing.T) {
	out := t.TempDir()
	ctl := t.TempDir()
	s := startEnv(t, []string{"OUT=" + out, "CTL=" + ctl}, "-exec",
		`cat > "$OUT/$SMTPD_ID.eml"; (sleep 60 & echo $! > "$CTL/child"); exit 0`)
	res := s.send("alice@example.org", []string{"bob@example.org"}, "Subject: once\n\nHi.\n")
	if b, err := os.ReadFile(filepath.Join(ctl, "child")); err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			if p, err := os.FindProcess(pid); err == nil {
				p.Kill()
			}
		}
	}
	if res.Data.Code != 250 {
		t.Errorf("DATA got %+v, want 250", res.Data)
	}
	s.stop()
	names := filesIn(t, out)
	if len(names) != 1 {
		t.Fatalf("the command stored %q, want one message", names)
	}
	if b, _ := os.ReadFile(filepath.Join(out, names[0])); !strings.HasSuffix(string(b), "Subject: once\r\n\r\nHi.\r\n") {
		t.Errorf("stored %q", b)
	}
}
