//go:build darwin || dragonfly || freebsd || illumos || linux || netbsd || openbsd

package main

// The mail reader in this test takes flock(2), as mutt and Python's
// mailbox do; lock_unix.go says which systems have it.

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// Concurrent deliveries to one mbox take turns under the lock: every
// message is whole and separate. One delivery waits while a mail reader
// holds the lock, and is stored once it lets go.
func TestMboxConcurrentAndLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sink.mbox")
	s := start(t, "-mbox", path, "-v") // -v logs the end of each message's content

	reader, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	if err := syscall.Flock(int(reader.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	const n = 6
	results := make(chan pyResult, n)
	for i := range n {
		go func() {
			results <- s.send("alice@example.org", []string{"bob@example.org"},
				fmt.Sprintf("Subject: %d\n\n%s\nFrom the middle\n", i, strings.Repeat("line\n", 2000)))
		}()
	}
	// Every message has arrived and waits for the lock: nothing may be
	// in the file yet.
	eventually(t, "all messages received", func() bool {
		return strings.Count(s.stderr.String(), "msg=client") > 0 && strings.Count(s.stderr.String(), " line=.\n") == n
	})
	if fi, _ := os.Stat(path); fi.Size() != 0 {
		t.Errorf("the mbox grew to %d bytes while locked", fi.Size())
	}
	syscall.Flock(int(reader.Fd()), syscall.LOCK_UN)
	for range n {
		if res := <-results; res.Data.Code != 250 {
			t.Errorf("DATA: %+v", res.Data)
		}
	}
	s.stop()

	msgs := readMailbox(t, "mbox", path)
	if len(msgs) != n {
		t.Fatalf("mbox holds %d messages, want %d", len(msgs), n)
	}
	for _, m := range msgs {
		if want := strings.Repeat("line\n", 2000) + "\n>From the middle\n"; m.Body != want {
			t.Errorf("message %q: body of %d bytes, want %d", m.header("Subject"), len(m.Body), len(want))
		}
	}
}
