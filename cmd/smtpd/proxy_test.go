package main

import (
	"bufio"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// proxyHeader is what HAProxy's "send-proxy" sends before a client's
// session: the client 192.0.2.9 reached the proxy at 198.51.100.1.
const proxyHeader = "PROXY TCP4 192.0.2.9 198.51.100.1 40000 25\r\n"

// -proxy-protocol: behind a proxy in -proxy-trusted, the client is the one
// the PROXY header names, in the Received field and in the log.
func TestProxyProtocol(t *testing.T) {
	md := filepath.Join(t.TempDir(), "Maildir")
	s := start(t, "-maildir", md, "-proxy-protocol", "-proxy-trusted", "10.0.0.0/8,127.0.0.1", "-v")

	c, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(waitTimeout))
	io.WriteString(c, proxyHeader)
	r := bufio.NewReader(c)
	expectReply(t, r, "220")
	command(t, c, r, "EHLO client.example", "250")
	command(t, c, r, "MAIL FROM:<alice@example.org>", "250")
	command(t, c, r, "RCPT TO:<bob@example.org>", "250")
	command(t, c, r, "DATA", "354")
	command(t, c, r, "Subject: proxied\r\n\r\nx\r\n.", "250")
	command(t, c, r, "QUIT", "221")
	s.waitLog(`msg="session ended" remote=192.0.2.9:40000`)

	// Version 2, binary (HAProxy's "send-proxy-v2"): the signature,
	// version 2 PROXY, TCP over IPv4, 12 octets of addresses and ports.
	v2 := "\r\n\r\n\x00\r\nQUIT\n" + "\x21\x11\x00\x0c" + "\xc0\x00\x02\x0a" + "\xc6\x33\x64\x01" + "\x9c\x41" + "\x00\x19"
	c3, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c3.Close()
	c3.SetDeadline(time.Now().Add(waitTimeout))
	io.WriteString(c3, v2)
	r3 := bufio.NewReader(c3)
	expectReply(t, r3, "220")
	command(t, c3, r3, "QUIT", "221")
	s.waitLog(`msg="session ended" remote=192.0.2.10:40001`)

	// From the trusted proxy, a connection without a header is closed
	// without a word: the proxy would not understand one.
	c2, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	c2.SetDeadline(time.Now().Add(waitTimeout))
	io.WriteString(c2, "EHLO client.example\r\n")
	if b, err := io.ReadAll(c2); len(b) > 0 || err != nil {
		t.Errorf("connection without a PROXY header: got %q, %v; want it closed", b, err)
	}
	s.stop()

	msgs := readMailbox(t, "maildir", md)
	if len(msgs) != 1 {
		t.Fatalf("%d messages stored, want 1", len(msgs))
	}
	if r := msgs[0].header("Received"); len(r) != 1 || !strings.Contains(r[0], "[192.0.2.9]") {
		t.Errorf("Received %q does not name the proxied client 192.0.2.9", r)
	}
	// The -v log shows the header as such, then the session.
	log := s.stderr.String()
	for _, want := range []string{`line="PROXY TCP4 192.0.2.9 198.51.100.1 40000 25"`, `line="EHLO client.example"`, `line="220 `,
		`line="[PROXY protocol v2 header]"`} {
		if !strings.Contains(log, want) {
			t.Errorf("-v log lacks %s:\n%s", want, log)
		}
	}
}

// -deny-hosts judges the client the PROXY header names, not the proxy.
func TestProxyProtocolDenyHosts(t *testing.T) {
	s := start(t, "-discard", "-proxy-protocol", "-proxy-trusted", "127.0.0.0/8", "-deny-hosts", "192.0.2.9")
	for _, tc := range []struct{ header, want string }{
		{proxyHeader, "554"},
		{strings.Replace(proxyHeader, "192.0.2.9", "192.0.2.10", 1), "220"},
	} {
		c, err := net.Dial("tcp", s.addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(waitTimeout))
		io.WriteString(c, tc.header)
		expectReply(t, bufio.NewReader(c), tc.want)
		c.Close()
	}
	s.stop()
}
