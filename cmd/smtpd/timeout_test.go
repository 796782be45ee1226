package main

import (
	"io"
	"path/filepath"
	"testing"
	"time"
)

// -data-timeout cuts off a client that stops sending in the middle of a
// message, and -message-timeout one that trickles it, a line at a time,
// each well within the data timeout: both get 421, nothing is stored, and
// the server goes on serving others. Before these flags, a trickle held
// its connection for the library's 30 minutes.
func TestMessageTimeouts(t *testing.T) {
	for _, tc := range []struct {
		flag, value string
		trickle     bool
	}{
		{"-data-timeout", "300ms", false},
		{"-message-timeout", "1s", true},
	} {
		t.Run(tc.flag, func(t *testing.T) {
			dir := t.TempDir()
			s := start(t, "-maildir", dir, tc.flag, tc.value)
			c, r := dialSMTP(t, s.addr)
			command(t, c, r, "EHLO client.example", "250")
			command(t, c, r, "MAIL FROM:<alice@example.org>", "250")
			command(t, c, r, "RCPT TO:<bob@example.org>", "250")
			command(t, c, r, "DATA", "354")
			io.WriteString(c, "Subject: slow\r\n\r\n")
			begin := time.Now()
			done := make(chan struct{})
			defer close(done)
			if tc.trickle {
				go func() {
					tick := time.NewTicker(100 * time.Millisecond)
					defer tick.Stop()
					for {
						select {
						case <-done:
							return
						case <-tick.C:
							if _, err := io.WriteString(c, "x\r\n"); err != nil {
								return
							}
						}
					}
				}()
			}
			expectReply(t, r, "421 4.4.2")
			t.Logf("%s %s: cut off after %v", tc.flag, tc.value, time.Since(begin).Round(time.Millisecond))

			if res := s.send("carol@example.org", []string{"dave@example.org"}, "Subject: next\n\nHi.\n"); res.Data.Code != 250 {
				t.Errorf("the next client: DATA got %+v, want 250", res.Data)
			}
			s.stop()
			if names := filesIn(t, filepath.Join(dir, "tmp")); len(names) != 0 {
				t.Errorf("tmp/ holds %q", names)
			}
			if msgs := readMailbox(t, "maildir", dir); len(msgs) != 1 || msgs[0].header("Subject")[0] != "next" {
				t.Errorf("Maildir holds %+v, want the next client's message only", msgs)
			}
		})
	}
}
