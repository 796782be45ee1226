package main

// Soak tests: many sessions at once through the built program, each
// message carrying a unique token, and afterwards a count of what was
// stored against what the clients were told. The rule they check is the
// one a client relies on: a message answered 250 is stored exactly once,
// whole; a message not answered 250 is not stored, not even in part. Sized
// to take seconds under -race on two cores.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// soakConn is a raw SMTP session for a soak client. It runs in the
// client's goroutine, so it returns errors instead of failing the test.
type soakConn struct {
	c net.Conn
	r *textproto.Reader
}

// soakDial opens a session and greets; it fails when the server does not
// answer 220 and 250 (as when it has stopped listening).
func soakDial(addr string) (*soakConn, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(waitTimeout))
	s := &soakConn{c: c, r: textproto.NewReader(bufio.NewReader(c))}
	if code, err := s.reply(); code != 220 {
		c.Close()
		return nil, fmt.Errorf("greeting %d, %v", code, err)
	}
	if code, err := s.cmd("EHLO soak.example"); code != 250 {
		c.Close()
		return nil, fmt.Errorf("EHLO: %d, %v", code, err)
	}
	return s, nil
}

// reply reads one reply, all its lines, and returns its code; 0 when none
// came.
func (s *soakConn) reply() (int, error) {
	code, _, err := s.r.ReadResponse(0)
	return code, err
}

func (s *soakConn) cmd(line string) (int, error) {
	if _, err := io.WriteString(s.c, line+"\r\n"); err != nil {
		return 0, err
	}
	return s.reply()
}

// send sends msg in a transaction and returns the reply to its end: 250,
// a refusal, or the reply that refused the envelope (421 once the server
// shuts down); 0 and an error when the connection failed. pause, when not
// nil, runs when half the message has been sent.
func (s *soakConn) send(msg string, pause func()) (int, error) {
	for _, line := range []string{"MAIL FROM:<soak@example.org>", "RCPT TO:<sink@example.org>"} {
		if code, err := s.cmd(line); code != 250 {
			return code, err
		}
	}
	if code, err := s.cmd("DATA"); code != 354 {
		return code, err
	}
	half := len(msg) / 2
	if _, err := io.WriteString(s.c, msg[:half]); err != nil {
		return 0, err
	}
	if pause != nil {
		pause()
	}
	if _, err := io.WriteString(s.c, msg[half:]+".\r\n"); err != nil {
		return 0, err
	}
	return s.reply()
}

// soakMessage is the message with token m of client c: the token in the
// Subject and on every line, and a size that varies with it, from one
// line to past the 64 KiB of the stores' buffers.
func soakMessage(token string, c, m int) string {
	lines := 1 + (c*31+m*17)%400
	if (c+m)%7 == 0 {
		lines = 1500
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Subject: %s\r\nMessage-ID: <%s@soak.example>\r\n\r\n", token, token)
	for i := range lines {
		fmt.Fprintf(&b, "%s %04d %s\r\n", token, i, strings.Repeat("x", 60))
	}
	return b.String()
}

// soakResult is what one soak client saw.
type soakResult struct {
	client int
	sent   map[string]string // token: message, for every message whose DATA began
	acked  []string          // tokens answered 250
	codes  []int             // every transaction's last reply, 0 for none
	err    error             // why the client stopped early, if it did
	// noSession: it stopped because a new session could not start (no
	// one listening, or 421 in place of the greeting or the EHLO reply).
	noSession bool
}

// soakClient sends up to n messages, over sessions of perSession each,
// and stops at the first session that cannot go on (421, a closed
// connection, or no more connections). pause, when not nil, is called for
// each message and may return a function to run in its middle.
func soakClient(addr string, client, n, perSession int, pause func(m int) func()) soakResult {
	res := soakResult{client: client, sent: map[string]string{}}
	var s *soakConn
	defer func() {
		if s != nil {
			s.c.Close()
		}
	}()
	for m := range n {
		if s != nil && m%perSession == 0 {
			s.cmd("QUIT")
			s.c.Close()
			s = nil
		}
		if s == nil {
			var err error
			if s, err = soakDial(addr); err != nil {
				res.err, res.noSession = err, true
				return res
			}
		}
		token := fmt.Sprintf("soak-c%02d-m%02d", client, m)
		msg := soakMessage(token, client, m)
		res.sent[token] = msg
		var mid func()
		if pause != nil {
			mid = pause(m)
		}
		code, err := s.send(msg, mid)
		res.codes = append(res.codes, code)
		switch {
		case code == 250:
			res.acked = append(res.acked, token)
		case code == 0 || code == 421:
			res.err = fmt.Errorf("%s: %d, %v", token, code, err)
			return res
		}
		// Any other reply refused this message only: the session goes
		// on with the next. A refused RCPT leaves a transaction open.
		if code/100 != 2 {
			if c, err := s.cmd("RSET"); c != 250 {
				res.err = fmt.Errorf("RSET after %s: %d, %v", token, c, err)
				return res
			}
		}
	}
	return res
}

// soakRun runs clients soak clients at once and returns their results.
func soakRun(addr string, clients, n, perSession int, pause func(client, m int) func()) []soakResult {
	ch := make(chan soakResult, clients)
	for c := range clients {
		go func() {
			var p func(m int) func()
			if pause != nil {
				p = func(m int) func() { return pause(c, m) }
			}
			ch <- soakClient(addr, c, n, perSession, p)
		}()
	}
	results := make([]soakResult, clients)
	for range clients {
		r := <-ch
		results[r.client] = r
	}
	return results
}

var soakSubject = regexp.MustCompile(`(?m)^Subject: (soak-\S+)\r?$`)

// checkStored checks the messages stored in files against the clients'
// results: every acknowledged message exactly once and whole, nothing that
// was not acknowledged. lf says whether the store writes LF line ends
// (Maildir) or keeps CRLF (what an -exec command reads).
func checkStored(t *testing.T, files []string, lf bool, results ...soakResult) {
	t.Helper()
	sent := map[string]string{}
	acked := map[string]bool{}
	for _, r := range results {
		for token, msg := range r.sent {
			sent[token] = msg
		}
		for _, token := range r.acked {
			acked[token] = true
		}
	}
	stored := map[string]int{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		m := soakSubject.FindSubmatch(b)
		if m == nil {
			t.Errorf("%s: a file with no soak message's Subject (%d bytes)", f, len(b))
			continue
		}
		token := string(m[1])
		stored[token]++
		want := sent[token]
		if lf {
			want = strings.ReplaceAll(want, "\r\n", "\n")
		}
		switch {
		case !acked[token]:
			t.Errorf("%s: %s is stored, but its client never got 250 for it", f, token)
		case !bytes.HasSuffix(b, []byte(want)) || !bytes.HasPrefix(b, []byte("Return-Path: <soak@example.org>")):
			t.Errorf("%s: %s is not whole (%d bytes; the message alone has %d)", f, token, len(b), len(want))
		}
	}
	for token := range acked {
		if n := stored[token]; n != 1 {
			t.Errorf("%s was acknowledged and is stored %d times", token, n)
		}
	}
}

// filesUnder returns the paths of the files in the given subdirectories
// of dir.
func filesUnder(t *testing.T, dir string, subs ...string) []string {
	t.Helper()
	var paths []string
	for _, sub := range subs {
		for _, name := range filesIn(t, filepath.Join(dir, sub)) {
			paths = append(paths, filepath.Join(dir, sub, name))
		}
	}
	return paths
}

// Twenty sessions at once send into a Maildir and SIGTERM comes in the
// middle: ten of them are halfway through a message, the others wherever
// they are. The messages in flight are finished and acknowledged, the
// rest of the clients get 421 or find no one listening, and the Maildir
// holds exactly the acknowledged messages, each once and whole, with
// nothing left in tmp/.
func TestSoakShutdown(t *testing.T) {
	const clients, perClient, perSession = 20, 10, 5
	const pausers, pauseAt = 10, 6 // clients 0-9 pause in their message 6, in their second session
	dir := t.TempDir()
	s := start(t, "-maildir", dir)

	mid := make(chan int, pausers)
	resume := make(chan struct{})
	done := make(chan []soakResult, 1)
	go func() {
		done <- soakRun(s.addr, clients, perClient, perSession, func(c, m int) func() {
			if c >= pausers || m != pauseAt {
				return nil
			}
			return func() {
				mid <- c
				<-resume
			}
		})
	}()
	for range pausers {
		select {
		case <-mid:
		case results := <-done:
			t.Fatalf("the clients ended before all paused: %+v", results)
		case <-time.After(waitTimeout):
			t.Fatal("the clients did not reach their pause")
		}
	}
	s.signal(syscall.SIGTERM)
	s.waitLog("shutting down")
	close(resume)
	var results []soakResult
	select {
	case results = <-done:
	case <-time.After(waitTimeout):
		t.Fatal("the clients did not finish")
	}
	if code := s.wait(); code != 0 {
		t.Errorf("exit status %d after SIGTERM, want 0", code)
	}

	total := 0
	for _, r := range results {
		total += len(r.acked)
		if r.client < pausers {
			token := fmt.Sprintf("soak-c%02d-m%02d", r.client, pauseAt)
			if r.codes[pauseAt] != 250 {
				t.Errorf("client %d: %s, in flight at SIGTERM, got %d, want 250", r.client, token, r.codes[pauseAt])
			}
		}
		// Every message got 250, but for a 421 that ended the client's
		// session; a client cut short was refused by the shutdown, at a
		// command or when it tried to start a session.
		for i, code := range r.codes {
			if code != 250 && !(code == 421 && i == len(r.codes)-1) {
				t.Errorf("client %d: message %d got %d (%v), want 250", r.client, i, code, r.err)
			}
		}
		if n := len(r.codes); n < perClient && !r.noSession && (n == 0 || r.codes[n-1] != 421) {
			t.Errorf("client %d stopped after %d messages: %v", r.client, len(r.codes), r.err)
		}
	}
	t.Logf("%d of %d messages acknowledged before the shutdown ended", total, clients*perClient)
	if tmp := filesIn(t, filepath.Join(dir, "tmp")); len(tmp) != 0 {
		t.Errorf("tmp/ holds %q", tmp)
	}
	checkStored(t, filesUnder(t, dir, "new", "cur"), true, results...)
}

// A store that fails, four ways: a full file system, a read-only one, an
// -exec command that exits 75, and one that hangs (-delivery-timeout).
// Sessions at once each send several messages: every one is answered
// 451, never 250, the sessions go on after each refusal, and nothing is
// stored. Once the store works again, the same server stores the next
// message.
func TestSoakStoreFailing(t *testing.T) {
	const script = `if [ -e "$CTL/fail" ]; then cat > /dev/null; exit 75; fi
if [ -e "$CTL/hang" ]; then cat > /dev/null; sleep 60; fi
cat > "$OUT/$SMTPD_ID.tmp" && mv "$OUT/$SMTPD_ID.tmp" "$OUT/$SMTPD_ID.eml"`
	for _, tc := range []struct {
		name    string
		clients int
		// setup starts the server with a working store and returns
		// functions that make it fail and work again, and the files it
		// stored.
		setup func(t *testing.T) (s *server, fail, heal func(), stored func() []string, lf bool)
	}{
		{"full file system", 8, func(t *testing.T) (*server, func(), func(), func() []string, bool) {
			mnt := mountTmpfs(t)
			dir := filepath.Join(mnt, "Maildir")
			filler := filepath.Join(mnt, "filler")
			return start(t, "-maildir", dir),
				func() { fillFileSystem(t, filler) },
				func() { os.Remove(filler) },
				func() []string { return filesUnder(t, dir, "tmp", "new", "cur") }, true
		}},
		{"read-only file system", 8, func(t *testing.T) (*server, func(), func(), func() []string, bool) {
			mnt := mountTmpfs(t)
			dir := filepath.Join(mnt, "Maildir")
			return start(t, "-maildir", dir),
				func() { remount(t, mnt, "ro") },
				func() { remount(t, mnt, "rw") },
				func() []string { return filesUnder(t, dir, "tmp", "new", "cur") }, true
		}},
		{"-exec exits 75", 8, func(t *testing.T) (*server, func(), func(), func() []string, bool) {
			ctl, out := t.TempDir(), t.TempDir()
			return startEnv(t, []string{"CTL=" + ctl, "OUT=" + out}, "-exec", script),
				func() { os.WriteFile(filepath.Join(ctl, "fail"), nil, 0o600) },
				func() { os.Remove(filepath.Join(ctl, "fail")) },
				func() []string { return filesUnder(t, out, ".") }, false
		}},
		{"-exec hangs", 4, func(t *testing.T) (*server, func(), func(), func() []string, bool) {
			ctl, out := t.TempDir(), t.TempDir()
			return startEnv(t, []string{"CTL=" + ctl, "OUT=" + out}, "-exec", script, "-delivery-timeout", "500ms"),
				func() { os.WriteFile(filepath.Join(ctl, "hang"), nil, 0o600) },
				func() { os.Remove(filepath.Join(ctl, "hang")) },
				func() []string { return filesUnder(t, out, ".") }, false
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const perClient = 3
			s, fail, heal, stored, lf := tc.setup(t)
			fail()
			results := soakRun(s.addr, tc.clients, perClient, perClient, nil)
			for _, r := range results {
				if r.err != nil || len(r.codes) != perClient {
					t.Errorf("client %d: the session ended after %d messages: %v", r.client, len(r.codes), r.err)
				}
				for _, code := range r.codes {
					if code != 451 {
						t.Errorf("client %d: replies %v, want 451 to each message", r.client, r.codes)
						break
					}
				}
			}
			if files := stored(); len(files) != 0 {
				t.Errorf("the failing store kept %q", files)
			}

			heal()
			after := soakRun(s.addr, 1, 1, 1, nil)[0]
			after.client = tc.clients // its token must not be taken for another's
			if len(after.acked) != 1 {
				t.Errorf("once the store works again: replies %v, %v; want 250", after.codes, after.err)
			}
			s.stop()
			checkStored(t, stored(), lf, append(results, after)...)
		})
	}
}

// mountTmpfs mounts a 2 MiB tmpfs for the test, unmounted when it ends. It
// needs root on Linux: elsewhere the test is skipped, saying why, unless
// CI is set (CI runs as root on Linux), where it fails.
func mountTmpfs(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", dir).CombinedOutput()
	if err != nil {
		reason := fmt.Sprintf("mounting a tmpfs failed (%v: %s); this test needs root on Linux", err, bytes.TrimSpace(out))
		if os.Getenv("CI") != "" {
			t.Fatal(reason + ", and CI is set")
		}
		t.Skip(reason)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// remount makes the file system at dir read-only ("ro") or writable ("rw").
func remount(t *testing.T, dir, mode string) {
	t.Helper()
	if out, err := exec.Command("mount", "-o", "remount,"+mode, dir).CombinedOutput(); err != nil {
		t.Fatalf("remount %s %s: %v: %s", mode, dir, err, out)
	}
}

// fillFileSystem writes the file path until its file system is full.
func fillFileSystem(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			return
		}
	}
}
