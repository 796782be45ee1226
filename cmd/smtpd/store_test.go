package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// checkEnvelopeHeader checks the fields every stored message begins with:
// Return-Path, one Delivered-To per recipient, then Received.
func checkEnvelopeHeader(t *testing.T, m storedMessage, from string, to ...string) {
	t.Helper()
	want := []string{"Return-Path"}
	for range to {
		want = append(want, "Delivered-To")
	}
	want = append(want, "Received")
	for i, name := range want {
		if i >= len(m.Headers) || m.Headers[i][0] != name {
			t.Fatalf("header field %d: want %s; headers %q", i, name, m.Headers)
		}
	}
	if got := m.header("Return-Path"); len(got) != 1 || got[0] != "<"+from+">" {
		t.Errorf("Return-Path %q, want <%s>", got, from)
	}
	got := m.header("Delivered-To")
	for i, rcpt := range to {
		if i >= len(got) || got[i] != "<"+rcpt+">" {
			t.Errorf("Delivered-To %q, want <%s> as number %d", got, rcpt, i+1)
		}
	}
}

// Maildir: a message from Python's smtplib is in new/, readable by Python's
// mailbox.Maildir, with the envelope fields and LF line ends; the Maildir is
// created when missing.
func TestMaildir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "deep", "Maildir")
	s := start(t, "-maildir", dir)
	res := s.send("alice@example.org", []string{"bob@example.org", "carol@example.net"},
		"Subject: maildir test\nFrom: alice@example.org\n\nHello Bob.\n.leading dot\nFrom the start\n")
	if res.Data.Code != 250 {
		t.Fatalf("DATA: %+v", res)
	}
	s.waitLog("result=\"250 stored\"")

	msgs := readMailbox(t, "maildir", dir)
	if len(msgs) != 1 {
		t.Fatalf("Maildir holds %d messages, want 1", len(msgs))
	}
	m := msgs[0]
	if m.Subdir != "new" {
		t.Errorf("message in %q, want new", m.Subdir)
	}
	checkEnvelopeHeader(t, m, "alice@example.org", "bob@example.org", "carol@example.net")
	if got := m.header("Subject"); len(got) != 1 || got[0] != "maildir test" {
		t.Errorf("Subject %q", got)
	}
	if want := "Hello Bob.\n.leading dot\nFrom the start\n"; m.Body != want {
		t.Errorf("body %q, want %q", m.Body, want)
	}

	names := filesIn(t, filepath.Join(dir, "new"))
	raw, err := os.ReadFile(filepath.Join(dir, "new", names[0]))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(raw), "\r") {
		t.Errorf("Maildir file holds CR; want LF line ends:\n%q", raw)
	}
	if !strings.HasPrefix(string(raw), "Return-Path: <alice@example.org>\nDelivered-To: <bob@example.org>\nDelivered-To: <carol@example.net>\nReceived: ") {
		t.Errorf("file starts %q", raw[:min(len(raw), 120)])
	}
	if tmp := filesIn(t, filepath.Join(dir, "tmp")); len(tmp) != 0 {
		t.Errorf("tmp/ holds %q after delivery", tmp)
	}
	s.stop()
}

// A message the library refuses midway (too big, or a bare LF) leaves no
// file in the Maildir, in new/ or tmp/.
func TestMaildirRefusedLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	s := start(t, "-maildir", dir, "-max-size", "200")
	c, r := dialSMTP(t, s.addr)
	command(t, c, r, "EHLO client.example", "250")

	command(t, c, r, "MAIL FROM:<a@example.org>", "250")
	command(t, c, r, "RCPT TO:<b@example.org>", "250")
	command(t, c, r, "DATA", "354")
	c.Write([]byte("Subject: big\r\n\r\n" + strings.Repeat("0123456789abcdef0123456789\r\n", 50) + ".\r\n"))
	expectReply(t, r, "552")

	command(t, c, r, "MAIL FROM:<a@example.org>", "250")
	command(t, c, r, "RCPT TO:<b@example.org>", "250")
	command(t, c, r, "DATA", "354")
	c.Write([]byte("Subject: bare\r\n\r\nsmuggled\nmore\r\n.\r\n"))
	expectReply(t, r, "550")
	command(t, c, r, "QUIT", "221")

	s.waitLog("not received")
	for _, sub := range []string{"new", "tmp", "cur"} {
		if names := filesIn(t, filepath.Join(dir, sub)); len(names) != 0 {
			t.Errorf("%s/ holds %q after refused messages", sub, names)
		}
	}
	s.stop()
}

// mbox: messages from swaks are appended in mboxrd format, readable by
// Python's mailbox.mbox: "From " lines in the body do not split a message,
// and the null sender is MAILER-DAEMON.
func TestMbox(t *testing.T) {
	need(t, "swaks")
	path := filepath.Join(t.TempDir(), "sink.mbox")
	s := start(t, "-mbox", path)
	host, port := s.hostPort()
	swaks := func(from, body string) {
		out := runClient(t, false, "swaks", "--server", host, "--port", port, "--helo", "client.example",
			"--from", from, "--to", "bob@example.org", "--data", body)
		if !strings.Contains(out, "<-  250 2.0.0") {
			t.Fatalf("swaks did not get 250:\n%s", out)
		}
	}
	swaks("alice@example.org", "Subject: one\n\nFrom here on\n>From quoted\nplain")
	swaks("<>", "Subject: two\n\nbounce")
	s.waitLog("size=") // the second delivery line may still be coming; reading waits for the lock
	s.stop()

	msgs := readMailbox(t, "mbox", path)
	if len(msgs) != 2 {
		t.Fatalf("mbox holds %d messages, want 2: %+v", len(msgs), msgs)
	}
	if !strings.HasPrefix(msgs[0].From, "alice@example.org ") {
		t.Errorf("first From line %q", msgs[0].From)
	}
	if !strings.HasPrefix(msgs[1].From, "MAILER-DAEMON ") {
		t.Errorf("second From line %q, want MAILER-DAEMON", msgs[1].From)
	}
	checkEnvelopeHeader(t, msgs[0], "alice@example.org", "bob@example.org")
	checkEnvelopeHeader(t, msgs[1], "", "bob@example.org")
	// Python's mbox does not undo the quoting; mboxrd adds one ">".
	if want := ">From here on\n>>From quoted\nplain\n"; msgs[0].Body != want {
		t.Errorf("first body %q, want %q", msgs[0].Body, want)
	}

	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(raw), "\r") {
		t.Errorf("mbox holds CR; want LF line ends")
	}
	if !strings.HasSuffix(string(raw), "bounce\n\n") {
		t.Errorf("mbox does not end with the last message and a blank line: %q", raw[max(0, len(raw)-40):])
	}
}

// A refused message leaves the mbox as it was, and the next one is
// appended properly.
func TestMboxRefusedLeavesNothing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sink.mbox")
	s := start(t, "-mbox", path)
	c, r := dialSMTP(t, s.addr)
	command(t, c, r, "EHLO client.example", "250")
	command(t, c, r, "MAIL FROM:<a@example.org>", "250")
	command(t, c, r, "RCPT TO:<b@example.org>", "250")
	command(t, c, r, "DATA", "354")
	c.Write([]byte("Subject: bare\r\n\r\nsmuggled\nmore\r\n.\r\n"))
	expectReply(t, r, "550")
	if fi, err := os.Stat(path); err != nil || fi.Size() != 0 {
		t.Fatalf("after a refused message the mbox is %v, %v; want empty", fi.Size(), err)
	}
	command(t, c, r, "MAIL FROM:<a@example.org>", "250")
	command(t, c, r, "RCPT TO:<b@example.org>", "250")
	command(t, c, r, "DATA", "354")
	c.Write([]byte("Subject: good\r\n\r\nfine\r\n.\r\n"))
	expectReply(t, r, "250")
	command(t, c, r, "QUIT", "221")
	s.stop()

	msgs := readMailbox(t, "mbox", path)
	if len(msgs) != 1 || msgs[0].Body != "fine\n" {
		t.Fatalf("mbox holds %+v, want the one good message", msgs)
	}
}

// Without a storage flag each message is printed on standard output once
// complete, as the seed's example did; here sent by curl.
func TestStdout(t *testing.T) {
	need(t, "curl")
	s := start(t)
	file := filepath.Join(t.TempDir(), "msg.eml")
	os.WriteFile(file, []byte("Subject: via curl\r\nFrom: alice@example.org\r\n\r\nHello from curl.\r\n"), 0o600)
	runClient(t, false, "curl", "--silent", "--show-error", "smtp://"+s.addr+"/client.example",
		"--mail-from", "alice@example.org", "--mail-rcpt", "bob@example.org", "--upload-file", file)
	s.waitLog("result=\"250 stored\"")
	s.stop()

	out := s.stdout.String()
	if !strings.HasPrefix(out, "From alice@example.org ") {
		t.Fatalf("stdout does not start with a From line:\n%s", out)
	}
	_, msg, _ := strings.Cut(out, "\r\n")
	for _, want := range []string{
		"Return-Path: <alice@example.org>\r\nDelivered-To: <bob@example.org>\r\nReceived: from client.example",
		"Subject: via curl\r\nFrom: alice@example.org\r\n\r\nHello from curl.\r\n",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}
	if !strings.HasPrefix(msg, "Return-Path:") {
		t.Errorf("message does not begin with Return-Path:\n%s", msg)
	}
}

// A message refused midway is never printed.
func TestStdoutRefusedNotPrinted(t *testing.T) {
	s := start(t)
	c, r := dialSMTP(t, s.addr)
	command(t, c, r, "EHLO client.example", "250")
	command(t, c, r, "MAIL FROM:<a@example.org>", "250")
	command(t, c, r, "RCPT TO:<b@example.org>", "250")
	command(t, c, r, "DATA", "354")
	c.Write([]byte("Subject: bare\r\n\r\nsmuggled\nmore\r\n.\r\n"))
	expectReply(t, r, "550")
	command(t, c, r, "QUIT", "221")
	s.stop()
	if out := s.stdout.String(); out != "" {
		t.Errorf("a refused message was printed:\n%s", out)
	}
}

// -discard accepts and drops; swaks gets 250.
func TestDiscard(t *testing.T) {
	need(t, "swaks")
	s := start(t, "-discard", "-v") // -discard alone logs only errors
	host, port := s.hostPort()
	out := runClient(t, false, "swaks", "--server", host, "--port", port, "--to", "bob@example.org", "--from", "a@example.org")
	if !strings.Contains(out, "<-  250 2.0.0") {
		t.Fatalf("swaks did not get 250:\n%s", out)
	}
	s.waitLog("where=discarded")
	s.stop()
	if out := s.stdout.String(); out != "" {
		t.Errorf("-discard printed:\n%s", out)
	}
}

// -exec pipes each message to the command with the envelope in the
// environment; exit 0 is 250, 75 is 451, 1 is 554, and the command's
// output is logged, never sent to the client.
func TestExec(t *testing.T) {
	out := t.TempDir()
	script := `cat > "$OUT/$SMTPD_ID.eml"
printf '%s|%s' "$SMTPD_SENDER" "$SMTPD_RECIPIENTS" > "$OUT/$SMTPD_ID.env"
case "$SMTPD_RECIPIENTS" in
*tempfail*) echo "disk quota secret"; exit 75 ;;
*fail*) echo "no such user secret" >&2; exit 1 ;;
esac`
	s := startEnv(t, []string{"OUT=" + out}, "-exec", script)

	ok := s.send("alice@example.org", []string{"bob@example.org", "carol@example.org"}, "Subject: exec\n\nHi.\n")
	if ok.Data.Code != 250 {
		t.Errorf("exit 0: DATA got %+v, want 250", ok.Data)
	}
	temp := s.send("alice@example.org", []string{"tempfail@example.org"}, "Subject: exec\n\nHi.\n")
	if temp.Data.Code != 451 {
		t.Errorf("exit 75: DATA got %+v, want 451", temp.Data)
	}
	fail := s.send("", []string{"fail@example.org"}, "Subject: exec\n\nHi.\n")
	if fail.Data.Code != 554 {
		t.Errorf("exit 1: DATA got %+v, want 554", fail.Data)
	}
	for _, r := range []pyReply{temp.Data, fail.Data} {
		if strings.Contains(r.Text, "secret") {
			t.Errorf("reply %q holds the command's output", r.Text)
		}
	}
	s.waitLog("no such user secret")
	s.waitLog("disk quota secret")
	s.stop()

	// The first message's input and environment.
	var env, eml []byte
	for _, name := range filesIn(t, out) {
		b, _ := os.ReadFile(filepath.Join(out, name))
		if strings.HasSuffix(name, ".env") && strings.HasPrefix(string(b), "alice@example.org|bob") {
			env = b
			eml, _ = os.ReadFile(filepath.Join(out, strings.TrimSuffix(name, ".env")+".eml"))
		}
		if strings.HasSuffix(name, ".env") && strings.Contains(string(b), "fail@") && !strings.Contains(string(b), "temp") {
			if string(b) != "|fail@example.org" {
				t.Errorf("null sender: environment %q, want SMTPD_SENDER empty", b)
			}
		}
	}
	if string(env) != "alice@example.org|bob@example.org carol@example.org" {
		t.Errorf("SMTPD_SENDER|SMTPD_RECIPIENTS = %q", env)
	}
	want := "Return-Path: <alice@example.org>\r\nDelivered-To: <bob@example.org>\r\nDelivered-To: <carol@example.org>\r\nReceived: from client.example"
	if !strings.HasPrefix(string(eml), want) || !strings.HasSuffix(string(eml), "Subject: exec\r\n\r\nHi.\r\n") {
		t.Errorf("command's input:\n%q\nwant it to start with %q and end with the message", eml, want)
	}
}
