package main

import (
	"bufio"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"smtpd/conformance"
	"smtpd/internal/transcript"
)

// recordings waits until dir holds n transcripts and returns them, parsed,
// in the order of their names (the order of the sessions).
func recordings(t *testing.T, dir string, n int) ([]*transcript.Transcript, [][]byte) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	var names []string
	for {
		names, _ = filepath.Glob(filepath.Join(dir, "*.txt"))
		if len(names) >= n || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(names) != n {
		t.Fatalf("%d transcripts in %s, want %d: %q", len(names), dir, n, names)
	}
	slices.Sort(names)
	var ts []*transcript.Transcript
	var raw [][]byte
	for _, name := range names {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		tr, err := transcript.Parse(filepath.Base(name), b)
		if err != nil {
			t.Fatalf("%v\n%s", err, b)
		}
		ts = append(ts, tr)
		raw = append(raw, b)
	}
	return ts, raw
}

// replay replays a recorded transcript against the conformance suite's
// in-process server, configured by the recording's header.
func replay(t *testing.T, tr *transcript.Transcript, raw []byte) {
	t.Helper()
	if err := conformance.RunLocal(tr); err != nil {
		t.Errorf("replaying the recording: %v\n%s", err, raw)
	}
}

// TestRecord records sessions of smtplib in the clear, after STARTTLS and
// with implicit TLS, with AUTH PLAIN and LOGIN (a wrong password first),
// and a raw session with BDAT chunks holding bare line ends that ends
// without QUIT; each file must replay in the conformance runner, deliver
// what the client sent, and hold no password.
func TestRecord(t *testing.T) {
	dir := t.TempDir()
	users := filepath.Join(dir, "users")
	os.WriteFile(users, []byte("alice:secret\n"), 0o600)
	s := start(t, "-hostname", "mx.test", "-tls-self-signed", "-tls-addr", "127.0.0.1:0",
		"-auth-file", users, "-record", filepath.Join(dir, "new"), "-discard", "-v")

	res := session(t, s.addr, "smtp", "", []string{"ehlo"}, []string{"mail", "alice@example.org"},
		[]string{"rcpt", "bob@example.net"}, []string{"rcpt", "carol@example.net"},
		[]string{"data", "Subject: one\n\n.starts with a dot\n"}, []string{"quit"})
	if res[5].Code != 250 {
		t.Fatalf("plain session: %+v", res)
	}
	res = session(t, s.addr, "smtp", "", []string{"ehlo"}, []string{"starttls"}, []string{"ehlo"},
		[]string{"auth", "PLAIN", "alice", "oops"}, []string{"auth", "LOGIN", "alice", "secret"},
		[]string{"mail", "alice@example.org"}, []string{"rcpt", "bob@example.net"},
		[]string{"data", "Subject: two\n\nover TLS\n"}, []string{"quit"})
	if res[4].Code != 535 || res[5].Code != 235 || res[8].Code != 250 {
		t.Fatalf("STARTTLS session: %+v", res)
	}
	res = session(t, s.tlsAddr(), "ssl", "", []string{"ehlo"}, []string{"auth", "PLAIN", "alice", "secret"},
		[]string{"mail", "alice@example.org"}, []string{"rcpt", "bob@example.net"},
		[]string{"data", "Subject: three\n\nimplicit TLS\n"}, []string{"quit"})
	if res[2].Code != 235 || res[5].Code != 250 {
		t.Fatalf("implicit-TLS session: %+v", res)
	}
	c, r := dialSMTP(t, s.addr)
	command(t, c, r, "EHLO client.example", "250")
	command(t, c, r, "MAIL FROM:<alice@example.org> BODY=BINARYMIME", "250")
	command(t, c, r, "RCPT TO:<bob@example.net>", "250")
	// command adds the CRLF that ends each chunk.
	command(t, c, r, "BDAT 10\r\nbare\nLF\r", "250")
	command(t, c, r, "BDAT 3 LAST\r\n.", "250")
	c.Close()

	ts, raw := recordings(t, filepath.Join(dir, "new"), 4)
	for i, b := range raw {
		for _, secret := range []string{"secret", b64("secret"), b64("\x00alice\x00secret"), b64("\x00alice\x00oops"), "oops"} {
			if bytes.Contains(b, []byte(secret)) {
				t.Errorf("%s holds the secret %q:\n%s", ts[i].Name, secret, b)
			}
		}
		replay(t, ts[i], b)
	}

	// Each file says its level after ref:, and writes placeholders for the
	// runner's addresses and for the marks of each message.
	const level = "ref: recorded session; name the RFC section it exercises\nlevel: MUST\n"
	envelope := []string{"FROM:<${from}>", "TO:<${rcpt}>", "mail: <${from}>", "rcpt: <${rcpt}>\n"}
	want := []struct {
		tls, auth, data string
		header          []string
		steps           []transcript.Kind // must occur, in order
		file            []string          // in the file
	}{
		{"no", "", "Subject: one\r\n\r\n.starts with a dot\r\n", []string{"tls: starttls", "auth: user:********"}, nil,
			append([]string{"TO:<${rcpt2}>", "C: ${mark}Subject: ${tag}one\n", "rcpt: <${rcpt2}>\nD: ${mark}Subject: ${tag}one\n"}, envelope...)},
		{"yes", "alice", "Subject: two\r\n\r\nover TLS\r\n", []string{"tls: starttls", "auth: alice:********"}, []transcript.Kind{transcript.StartTLS},
			append([]string{"C: ${mark}Subject: ${tag}two\n", "D: ${mark}Subject: ${tag}two\n"}, envelope...)},
		{"yes", "alice", "Subject: three\r\n\r\nimplicit TLS\r\n", []string{"tls: implicit", "auth: alice:********"}, nil,
			append([]string{"C: ${mark}Subject: ${tag}three\n", "D: ${mark}Subject: ${tag}three\n"}, envelope...)},
		{"no", "", "bare\nLF\r\r\n.\r\n", []string{"needs: BINARYMIME CHUNKING"}, []transcript.Kind{transcript.Close, transcript.Closed},
			append([]string{"C: BDAT ${mark+10}\nC! \"${mark}bare\\nLF\\r\\r\\n\"\n", "C: BDAT 3 LAST\n", "D! \"${mark}bare\\nLF\\r\\r\\n\"\nD: .\n"}, envelope...)},
	}
	for i, w := range want {
		tr := ts[i]
		for _, s := range append([]string{level}, w.file...) {
			if !strings.Contains(string(raw[i]), s) {
				t.Errorf("%s: no %q in\n%s", tr.Name, s, raw[i])
			}
		}
		if _, ok := tr.Get("sink"); ok {
			t.Errorf("%s: sink: for the runner's own addresses", tr.Name)
		}
		for _, h := range w.header {
			k, v, _ := strings.Cut(h, ": ")
			if got, _ := tr.Get(k); got != v {
				t.Errorf("%s: header %s: %q, want %q", tr.Name, k, got, v)
			}
		}
		if len(tr.Deliveries) != 1 {
			t.Errorf("%s: %d deliveries, want 1", tr.Name, len(tr.Deliveries))
			continue
		}
		d := tr.Deliveries[0]
		if d.TLS != w.tls || d.Auth != w.auth || string(d.Data[0].Exact) != w.data {
			t.Errorf("%s: delivery tls %q auth %q data %q, want %q %q %q", tr.Name, d.TLS, d.Auth, d.Data[0].Exact, w.tls, w.auth, w.data)
		}
		var kinds []transcript.Kind
		for _, st := range tr.Steps {
			if slices.Contains(w.steps, st.Kind) {
				kinds = append(kinds, st.Kind)
			}
		}
		if !slices.Equal(kinds, w.steps) {
			t.Errorf("%s: events %v, want %v", tr.Name, kinds, w.steps)
		}
	}
	// The wrong password is replaced by another wrong one, so that the
	// replay is refused as the client was.
	if !bytes.Contains(raw[1], []byte(b64("\x00alice\x00"+transcript.WrongPassword))) {
		t.Errorf("%s: the refused AUTH PLAIN is not masked as refused:\n%s", ts[1].Name, raw[1])
	}
	if strings.Count(s.stderr.String(), "session recorded") != 4 {
		t.Errorf("want 4 \"session recorded\" log lines:\n%s", s.stderr.String())
	}
}

// TestRecordPipelining: a session recorded with -pipelining-sync=false
// and -greet-delay says so in its header, so that it replays: here the
// client sends NOOPs in one write, which the runner's server would refuse
// by default.
func TestRecordPipelining(t *testing.T) {
	dir := t.TempDir()
	s := start(t, "-hostname", "mx.test", "-record", dir, "-discard", "-pipelining-sync=false", "-greet-delay", "20ms")
	c, r := dialSMTP(t, s.addr)
	command(t, c, r, "EHLO client.example", "250")
	io.WriteString(c, "NOOP\r\nNOOP\r\n")
	expectReply(t, r, "250")
	expectReply(t, r, "250")
	command(t, c, r, "QUIT", "221")
	c.Close()

	ts, raw := recordings(t, dir, 1)
	for _, h := range []string{"pipelining-sync: off", "greet-delay: 20ms"} {
		k, v, _ := strings.Cut(h, ": ")
		if got, _ := ts[0].Get(k); got != v {
			t.Errorf("header %s: %q, want %q", k, got, v)
		}
	}
	replay(t, ts[0], raw[0])
}

// TestRecordNames: one file per session, named by time, sequence and the
// client's address.
func TestRecordNames(t *testing.T) {
	dir := t.TempDir()
	s := start(t, "-record", dir, "-discard")
	for i := 0; i < 2; i++ {
		c, r := dialSMTP(t, s.addr)
		command(t, c, r, "QUIT", "221")
		bufio.NewReader(c).ReadByte() // the close
		c.Close()
	}
	ts, _ := recordings(t, dir, 2)
	for i, tr := range ts {
		parts := strings.SplitN(strings.TrimSuffix(tr.Name, ".txt"), "-", 3)
		if len(parts) != 3 || len(parts[0]) != len("20060102T150405Z") || parts[1] != []string{"0001", "0002"}[i] || !strings.HasPrefix(parts[2], "127.0.0.1-") {
			t.Errorf("file name %q, want TIME-%04d-127.0.0.1-PORT.txt", tr.Name, i+1)
		}
	}
}
