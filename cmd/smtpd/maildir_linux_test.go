package main

import (
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// The directories -maildir makes are durable before any message is: the
// parent of each is synced after it is made, since a message synced into
// new/ is lost all the same if new/ itself is. strace sees the program's
// mkdirat and fsync calls, and names the directory an fsync is for (-y).
func TestMaildirCreatedDirsSynced(t *testing.T) {
	need(t, "strace")
	base := t.TempDir()
	dir := filepath.Join(base, "a", "Maildir")
	// A busy -addr stops the program once the Maildir is made, before
	// it would serve.
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	trace := filepath.Join(t.TempDir(), "trace")
	runClient(t, true, "strace", "-f", "-qq", "-y", "-s", "4096", "-o", trace,
		"-e", "trace=mkdir,mkdirat,fsync", binary, "-addr", busy.Addr().String(), "-maildir", dir)
	b, err := os.ReadFile(trace)
	if err != nil {
		t.Fatal(err)
	}

	mkdirRE := regexp.MustCompile(`mkdir(?:at)?\((?:[^,]*, )?"([^"]+)"`)
	fsyncRE := regexp.MustCompile(`fsync\(\d+<([^>]+)>`)
	var made []string
	pending := map[string]bool{} // directories whose new entries are not synced yet
	for _, line := range strings.Split(string(b), "\n") {
		if m := mkdirRE.FindStringSubmatch(line); m != nil {
			made = append(made, m[1])
			pending[filepath.Dir(m[1])] = true
		}
		if m := fsyncRE.FindStringSubmatch(line); m != nil {
			delete(pending, m[1])
		}
	}
	slices.Sort(made)
	want := []string{filepath.Join(base, "a"), dir, filepath.Join(dir, "cur"), filepath.Join(dir, "new"), filepath.Join(dir, "tmp")}
	if !slices.Equal(made, want) {
		t.Fatalf("the program made %q, want %q; strace:\n%s", made, want, b)
	}
	for d := range pending {
		t.Errorf("%s: a directory was made in it, and it was not synced after", d)
	}
}
