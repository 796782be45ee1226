package main

import (
	"errors"
	"io"
	"net"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startTransfer opens a session and sends the first part of a message,
// leaving it in the middle of DATA.
func startTransfer(t *testing.T, s *server) (net.Conn, func(line, code string) string, func(code string) string) {
	t.Helper()
	c, r := dialSMTP(t, s.addr)
	cmd := func(line, code string) string { t.Helper(); return command(t, c, r, line, code) }
	reply := func(code string) string { t.Helper(); return expectReply(t, r, code) }
	cmd("EHLO client.example", "250")
	cmd("MAIL FROM:<alice@example.org>", "250")
	cmd("RCPT TO:<bob@example.org>", "250")
	cmd("DATA", "354")
	io.WriteString(c, "Subject: in flight\r\n\r\nfirst half\r\n")
	return c, cmd, reply
}

// SIGTERM during a transfer: the message in flight is finished, gets 250
// and is stored; idle sessions get 421, new connections are refused, and
// the program exits 0.
func TestShutdownFinishesTransfer(t *testing.T) {
	dir := t.TempDir()
	s := start(t, "-maildir", dir)
	idle, idleReader := dialSMTP(t, s.addr)
	c, cmd, reply := startTransfer(t, s)

	s.signal(syscall.SIGTERM)
	s.waitLog("shutting down")
	expectReply(t, idleReader, "421")
	idle.Close()
	if nc, err := net.Dial("tcp", s.addr); err == nil {
		// The listener is closed: nothing may answer.
		buf := make([]byte, 64)
		if n, _ := nc.Read(buf); n > 0 {
			t.Errorf("a new connection during shutdown got %q", buf[:n])
		}
		nc.Close()
	}

	io.WriteString(c, "second half\r\n.\r\n")
	reply("250")
	cmd("NOOP", "421") // the session ends after its message
	if code := s.wait(); code != 0 {
		t.Errorf("exit status %d after SIGTERM, want 0", code)
	}

	msgs := readMailbox(t, "maildir", dir)
	if len(msgs) != 1 || msgs[0].Body != "first half\nsecond half\n" {
		t.Fatalf("Maildir holds %+v, want the message in flight, whole", msgs)
	}
}

// A second signal stops at once: the message in flight gets no reply and
// nothing of it is stored, in new/ or tmp/; the exit status is 1, so that
// a script can tell that the stop was not clean.
func TestShutdownForced(t *testing.T) {
	dir := t.TempDir()
	s := start(t, "-maildir", dir)
	c, _, _ := startTransfer(t, s)
	// Wait until the delivery has begun: its file is in tmp/.
	eventually(t, "a file in tmp/", func() bool { return len(filesIn(t, filepath.Join(dir, "tmp"))) > 0 })
	s.signal(syscall.SIGTERM)
	s.waitLog("shutting down")
	s.signal(syscall.SIGINT)
	s.waitLog("stopping at once")
	if code := s.wait(); code != exitFailure {
		t.Errorf("exit status %d after two signals, want %d", code, exitFailure)
	}

	io.WriteString(c, "second half\r\n.\r\n")
	rest, _ := io.ReadAll(c)
	if strings.Contains(string(rest), "250") {
		t.Errorf("the interrupted message was acknowledged: %q", rest)
	}
	for _, sub := range []string{"new", "tmp", "cur"} {
		if names := filesIn(t, filepath.Join(dir, sub)); len(names) != 0 {
			t.Errorf("%s/ holds %q after a forced stop", sub, names)
		}
	}
}

// eventually polls cond until it holds, for things the program does not
// log; it fails the test after waitTimeout.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// -shutdown-timeout bounds a graceful stop: the sessions still open when
// it ends are closed, a transfer in the middle of its message (which gets
// no 250 and leaves nothing in the Maildir) and clients stalled in the TLS
// handshake (which the library would otherwise wait for until its own
// handshake timeout); the program exits 0.
func TestShutdownTimeout(t *testing.T) {
	dir := t.TempDir()
	s := start(t, "-maildir", dir, "-tls-self-signed", "-tls-addr", "127.0.0.1:0", "-shutdown-timeout", "1s",
		"-max-conns-per-ip", "-1") // 51 connections from one address
	_, tlsAddr, _ := strings.Cut(s.waitLog("(TLS)"), "listening on ")
	tlsAddr = strings.TrimSuffix(tlsAddr, " (TLS)")

	// Clients that connect to the TLS port and never send a ClientHello.
	var stalled []net.Conn
	for range 50 {
		c, err := net.Dial("tcp", tlsAddr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(waitTimeout))
		stalled = append(stalled, c)
	}
	c, _, _ := startTransfer(t, s)
	eventually(t, "a file in tmp/", func() bool { return len(filesIn(t, filepath.Join(dir, "tmp"))) > 0 })

	begin := time.Now()
	s.signal(syscall.SIGTERM)
	s.waitLog("closing the sessions still open")
	if code := s.wait(); code != 0 {
		t.Errorf("exit status %d after -shutdown-timeout, want 0", code)
	}
	t.Logf("exited %v after SIGTERM, with -shutdown-timeout 1s", time.Since(begin).Round(time.Millisecond))

	for i, sc := range stalled {
		if n, err := sc.Read(make([]byte, 1)); n > 0 || isTimeout(err) {
			t.Fatalf("stalled TLS client %d: read %d bytes, error %v; want the connection closed", i, n, err)
		}
	}
	io.WriteString(c, "second half\r\n.\r\n")
	rest, _ := io.ReadAll(c)
	if strings.Contains(string(rest), "250") {
		t.Errorf("the message cut off by -shutdown-timeout was acknowledged: %q", rest)
	}
	for _, sub := range []string{"new", "tmp", "cur"} {
		if names := filesIn(t, filepath.Join(dir, sub)); len(names) != 0 {
			t.Errorf("%s/ holds %q after -shutdown-timeout", sub, names)
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
