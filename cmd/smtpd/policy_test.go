package main

import (
	"bufio"
	"net"
	"strings"
	"testing"
	"time"
)

// -deny-hosts and -allow-hosts decide at connect: a refused client gets
// 554 as its greeting (RFC 5321 3.1). The test clients come from
// 127.0.0.1.
func TestHostLists(t *testing.T) {
	need(t, "swaks")
	for _, tc := range []struct {
		name string
		args []string
		ok   bool
	}{
		{"deny the client", []string{"-deny-hosts", "192.0.2.1,127.0.0.1"}, false},
		{"deny its network", []string{"-deny-hosts", "127.0.0.0/8"}, false},
		{"deny others", []string{"-deny-hosts", "192.0.2.0/24,2001:db8::/32"}, true},
		{"allow others only", []string{"-allow-hosts", "10.0.0.0/8"}, false},
		{"allow its network", []string{"-allow-hosts", "10.0.0.0/8, 127.0.0.0/8"}, true},
		{"deny wins over allow", []string{"-allow-hosts", "127.0.0.0/8", "-deny-hosts", "127.0.0.1"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := start(t, append([]string{"-discard"}, tc.args...)...)
			host, port := s.hostPort()
			out := runClient(t, true, "swaks", "--server", host, "--port", port, "--helo", "client.example",
				"--from", "a@example.org", "--to", "b@example.org")
			switch {
			case tc.ok && !strings.Contains(out, "<-  250 2.0.0 OK"):
				t.Errorf("client refused, want it served:\n%s", out)
			case !tc.ok && !strings.Contains(out, "<** 554 "):
				t.Errorf("client not refused with 554:\n%s", out)
			case !tc.ok && strings.Contains(out, "queued"):
				t.Errorf("refused client's message accepted:\n%s", out)
			}
			s.stop()
		})
	}
}

// -deny-senders and -deny-recipients refuse at MAIL and RCPT, by pattern,
// ignoring case; -accept-domains refuses relaying for clients that have
// not authenticated.
func TestAddressLists(t *testing.T) {
	s := start(t, "-discard",
		"-deny-senders", "*@spam.example,bad?@example.org,<>",
		"-deny-recipients", "nobody@*",
		"-accept-domains", "example.org,*.example.net")

	for _, tc := range []struct {
		from string
		want int
	}{
		{"x@spam.example", 550},
		{"X@SPAM.Example", 550},
		{"bad1@example.org", 550},
		{"bad12@example.org", 250}, // ? is one character
		{"", 550},                  // <> listed
		{"good@example.org", 250},
		{"x@notspam.example", 250},
	} {
		res := s.send(tc.from, []string{"bob@example.org"}, "Subject: t\n\nx\n")
		if res.Mail.Code != tc.want {
			t.Errorf("MAIL FROM:<%s>: got %+v, want %d", tc.from, res.Mail, tc.want)
		}
		if tc.want == 550 && !strings.Contains(res.Mail.Text, "5.7.1") {
			t.Errorf("MAIL FROM:<%s>: %q lacks 5.7.1", tc.from, res.Mail.Text)
		}
	}

	rcpts := []struct {
		to   string
		want int
		text string
	}{
		{"bob@example.org", 250, ""},
		{"Bob@EXAMPLE.ORG", 250, ""},
		{"x@mail.example.net", 250, ""},
		{"x@example.net", 550, "5.7.1 Relay access denied"}, // *.example.net is subdomains only
		{"x@elsewhere.example", 550, "5.7.1 Relay access denied"},
		{"nobody@example.org", 550, "5.7.1 Recipient address rejected"},
		{"Postmaster", 250, ""}, // RFC 5321 4.5.1: always accepted
	}
	var to []string
	for _, r := range rcpts {
		to = append(to, r.to)
	}
	res := s.send("good@example.org", to, "Subject: t\n\nx\n")
	for i, r := range rcpts {
		if i >= len(res.Rcpt) {
			t.Fatalf("only %d RCPT replies: %+v", len(res.Rcpt), res)
		}
		got := res.Rcpt[i]
		if got.Code != r.want || !strings.Contains(got.Text, r.text) {
			t.Errorf("RCPT TO:<%s>: got %d %q, want %d %q", r.to, got.Code, got.Text, r.want, r.text)
		}
	}
	if res.Data.Code != 250 {
		t.Errorf("DATA for the accepted recipients: %+v", res.Data)
	}
	s.stop()
}

// -max-conns-per-ip: the connection beyond it, from the same address, gets
// 421 as its greeting and is closed.
func TestMaxConnsPerIP(t *testing.T) {
	s := start(t, "-discard", "-max-conns-per-ip", "1")
	dialSMTP(t, s.addr) // greeted, held
	c, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(waitTimeout))
	r := bufio.NewReader(c)
	expectReply(t, r, "421 ")
	if line, err := r.ReadString('\n'); err == nil {
		t.Fatalf("got %q after the 421, want the connection closed", line)
	}
	s.stop()
}
