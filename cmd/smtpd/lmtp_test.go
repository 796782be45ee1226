package main

import (
	"io"
	"path/filepath"
	"strings"
	"testing"
)

// -lmtp: the client greets with LHLO, and after the message gets one
// reply per accepted recipient (RFC 2033 4.2), here from Python's
// smtplib.LMTP over TCP. The program's stores give every recipient the
// same result.
func TestLMTP(t *testing.T) {
	md := filepath.Join(t.TempDir(), "Maildir")
	s := start(t, "-lmtp", "-maildir", md, "-deny-recipients", "nobody@*", "-v")
	res := session(t, s.addr, "lmtp", "", []string{"ehlo"}, []string{"mail", "alice@example.org"},
		[]string{"rcpt", "bob@example.org"}, []string{"rcpt", "nobody@example.org"}, []string{"rcpt", "carol@example.org"},
		[]string{"data", "Subject: lmtp\n\nlmtp-content\n"}, []string{"mail", "alice@example.org"}, []string{"quit"})
	if res[1].Code != 250 {
		t.Errorf("LHLO: %+v", res[1])
	}
	if res[3].Code != 250 || res[4].Code != 550 || res[5].Code != 250 {
		t.Errorf("RCPT replies %d %d %d, want 250 550 250", res[3].Code, res[4].Code, res[5].Code)
	}
	if data := res[6]; data.Code != 250 || len(data.More) != 1 || data.More[0].Code != 250 {
		t.Errorf("replies to the message: %+v, want two 250s", data)
	}
	// The session stayed in step: the next command got its own reply.
	if res[7].Code != 250 {
		t.Errorf("MAIL after the message: %+v", res[7])
	}
	// An SMTP client's EHLO is refused, pointing at LHLO.
	smtp := session(t, s.addr, "smtp", "", []string{"ehlo"}, []string{"quit"})
	if smtp[1].Code != 500 || !strings.Contains(smtp[1].Text, "LHLO") {
		t.Errorf("EHLO to an LMTP server: %+v", smtp[1])
	}
	// Pipelined after the message (RFC 2920), the next transaction's
	// replies come after the two for the message: the -v log must not take
	// the second for MAIL's, or it would take the next for DATA's and log
	// the content that follows as commands.
	c, r := dialSMTP(t, s.addr)
	command(t, c, r, "LHLO client.example", "250")
	command(t, c, r, "MAIL FROM:<alice@example.org>", "250")
	command(t, c, r, "RCPT TO:<bob@example.org>", "250")
	command(t, c, r, "RCPT TO:<carol@example.org>", "250")
	command(t, c, r, "DATA", "354")
	io.WriteString(c, "Subject: one\r\n\r\nlmtp-content\r\n.\r\nMAIL FROM:<alice@example.org>\r\nRCPT TO:<bob@example.org>\r\nRCPT TO:<carol@example.org>\r\nDATA\r\n")
	for _, code := range []string{"250", "250", "250", "250", "250", "354"} {
		expectReply(t, r, code)
	}
	io.WriteString(c, "Subject: two\r\n\r\nlmtp-content\r\n.\r\n")
	expectReply(t, r, "250")
	expectReply(t, r, "250")
	command(t, c, r, "QUIT", "221")
	s.waitLog(`msg="session ended"`)
	s.stop()

	// The -v log knew that both replies answered the message, and took
	// the next line for a command. (smtplib sends verbs in lower case.)
	if log := s.stderr.String(); strings.Count(log, `line="mail FROM:<alice@example.org>"`) != 2 || strings.Contains(log, "lmtp-content") ||
		strings.Count(log, `line="MAIL FROM:<alice@example.org>"`) != 2 {
		t.Errorf("-v log:\n%s", log)
	}
	msgs := readMailbox(t, "maildir", md)
	if len(msgs) != 3 {
		t.Fatalf("%d messages stored, want 3", len(msgs))
	}
	if got := msgs[0].header("Delivered-To"); len(got) != 2 {
		t.Errorf("Delivered-To %q, want bob and carol", got)
	}
	if r := msgs[0].header("Received"); len(r) != 1 || !strings.Contains(r[0], "with LMTP") {
		t.Errorf("Received %q, want LMTP (RFC 3848)", r)
	}
}

// -lmtp with -exec: the command's result is every recipient's result.
func TestLMTPExec(t *testing.T) {
	s := start(t, "-lmtp", "-exec", "cat >/dev/null; exit 75")
	res := session(t, s.addr, "lmtp", "", []string{"ehlo"}, []string{"mail", "alice@example.org"},
		[]string{"rcpt", "bob@example.org"}, []string{"rcpt", "carol@example.org"},
		[]string{"data", "Subject: lmtp\n\nx\n"}, []string{"quit"})
	if data := res[5]; data.Code != 451 || len(data.More) != 1 || data.More[0].Code != 451 {
		t.Errorf("replies to the message: %+v, want two 451s", data)
	}
	s.stop()
}
