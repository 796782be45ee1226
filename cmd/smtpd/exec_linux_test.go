package main

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// execGroupScript starts a child that would run for a minute, writes its
// process ID and then sh's to files in $OUT (through a rename, so that a
// file is never read half-written), reads the message, and waits.
const execGroupScript = `sleep 60 & echo $! > "$OUT/child.tmp"; mv "$OUT/child.tmp" "$OUT/child"
echo $$ > "$OUT/sh.tmp"; mv "$OUT/sh.tmp" "$OUT/sh"
cat > /dev/null; wait`

// An -exec delivery that does not finish kills the command's whole process
// group, the processes it started included, whatever ended it: sh killed by
// someone else (as the kernel kills on running out of memory: a temporary
// failure, 451, not 554), -delivery-timeout (451), or the end of
// -shutdown-timeout (421, never 250, and the connection is closed).
func TestExecKillsProcessGroup(t *testing.T) {
	for _, tc := range []struct {
		name  string
		flags []string
		end   func(t *testing.T, s *server, sh int) // ends the delivery
		reply string                                // the client's reply, "" for none
	}{
		{"sh killed", nil, func(t *testing.T, s *server, sh int) {
			if err := syscall.Kill(sh, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
		}, "451"},
		{"-delivery-timeout", []string{"-delivery-timeout", "500ms"}, nil, "451"},
		{"-shutdown-timeout", []string{"-shutdown-timeout", "500ms"}, func(t *testing.T, s *server, sh int) {
			s.signal(syscall.SIGTERM)
			s.waitLog("closing the sessions still open")
		}, "421"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := t.TempDir()
			s := startEnv(t, []string{"OUT=" + out}, append([]string{"-exec", execGroupScript}, tc.flags...)...)
			c, r := dialSMTP(t, s.addr)
			command(t, c, r, "EHLO client.example", "250")
			command(t, c, r, "MAIL FROM:<alice@example.org>", "250")
			command(t, c, r, "RCPT TO:<bob@example.org>", "250")
			command(t, c, r, "DATA", "354")
			io.WriteString(c, "Subject: group\r\n\r\nHi.\r\n.\r\n")

			child, sh := readPID(t, out, "child"), readPID(t, out, "sh")
			t.Cleanup(func() { syscall.Kill(child, syscall.SIGKILL) }) // if the test fails
			if tc.end != nil {
				tc.end(t, s, sh)
			}
			if tc.reply != "" {
				expectReply(t, r, tc.reply)
			} else if rest, _ := io.ReadAll(r); len(rest) > 0 {
				t.Errorf("got %q, want the connection closed without a reply", rest)
			}
			eventually(t, "the command's child killed", func() bool { return processGone(child) })
		})
	}
}

// readPID waits for the file name in dir and returns the process ID in it.
func readPID(t *testing.T, dir, name string) int {
	t.Helper()
	var pid int
	eventually(t, "$OUT/"+name, func() bool {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return false
		}
		pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil
	})
	return pid
}

// processGone reports whether process pid has ended: it is gone, or a
// zombie that its new parent has not reaped yet.
func processGone(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if errors.Is(err, fs.ErrNotExist) {
		return true
	}
	// "pid (comm) state ...": comm may hold anything, state follows the
	// last ")".
	i := bytes.LastIndexByte(b, ')')
	return i >= 0 && i+2 < len(b) && b[i+2] == 'Z'
}
