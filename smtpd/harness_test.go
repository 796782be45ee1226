package smtpd

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The test harness: a real Server on a loopback listener, a raw client that
// writes exact bytes and reads reply lines, and a handler that records what
// was delivered.

// startServer serves srv on a fresh loopback port and returns its address.
// The server is closed when the test ends, and Serve must then have
// returned ErrServerClosed.
func startServer(t testing.TB, srv *Server) string {
	t.Helper()
	return startServing(t, srv, srv.Serve)
}

// startServing is startServer with the serve method given: srv.Serve, or
// a function that calls srv.ServeTLS.
func startServing(t testing.TB, srv *Server, serve func(net.Listener) error) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if srv.Hostname == "" {
		srv.Hostname = "mx.test"
	}
	done := make(chan error, 1)
	go func() { done <- serve(l) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-done; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	return l.Addr().String()
}

// delivery is one message as the handler received it.
type delivery struct {
	env  *Envelope
	data string
}

// recorder is a Handler that records each message, and answers with err
// when it is set.
type recorder struct {
	mu   sync.Mutex
	msgs []delivery
	err  error
}

func (r *recorder) ServeSMTP(ctx context.Context, env *Envelope, msg io.Reader) error {
	b, err := io.ReadAll(msg)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, delivery{env, string(b)})
	return r.err
}

func (r *recorder) delivered() []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]delivery(nil), r.msgs...)
}

// client is a raw SMTP client for tests: it sends exact bytes and reads
// whole replies.
type client struct {
	t    testing.TB
	conn net.Conn
	r    *bufio.Reader
}

func dial(t testing.TB, addr string) *client {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	// A generous bound so that a broken server fails the test instead of
	// hanging it; no test waits for it to pass.
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	return &client{t: t, conn: conn, r: bufio.NewReader(conn)}
}

// send writes s as it is, without adding a line end.
func (c *client) send(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.conn, s); err != nil {
		c.t.Fatalf("send %q: %v", s, err)
	}
}

// cmd sends one command line with CRLF.
func (c *client) cmd(line string) { c.t.Helper(); c.send(line + "\r\n") }

// readReply reads one reply, all its lines, and returns its lines without
// CRLF. It fails the test on a malformed line: unlike net/textproto's
// ReadResponse, it takes a bare LF for one, which the server must never
// send (RFC 5321 2.3.8).
func (c *client) readReply() []string {
	c.t.Helper()
	var lines []string
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			c.t.Fatalf("reading reply after %q: %v", lines, err)
		}
		if !strings.HasSuffix(line, "\r\n") || len(line) < 5 {
			c.t.Fatalf("malformed reply line %q", line)
		}
		line = line[:len(line)-2]
		if _, err := strconv.Atoi(line[:3]); err != nil || (line[3] != ' ' && line[3] != '-') {
			c.t.Fatalf("malformed reply line %q", line)
		}
		lines = append(lines, line)
		if line[3] == ' ' {
			return lines
		}
	}
}

// expect reads one reply and checks that its last line starts with want,
// e.g. "250 2.1.0" or "503".
func (c *client) expect(want string) []string {
	c.t.Helper()
	lines := c.readReply()
	if last := lines[len(lines)-1]; !strings.HasPrefix(last, want) {
		c.t.Fatalf("want reply %q, got %q", want, lines)
	}
	return lines
}

// do sends a command line and expects a reply starting with want.
func (c *client) do(line, want string) []string {
	c.t.Helper()
	c.cmd(line)
	return c.expect(want)
}

// message sends a transaction from a@example.org to b@example.org with
// data, which must hold the end mark, and expects the final reply to start
// with want.
func (c *client) message(data, want string) []string {
	c.t.Helper()
	c.do("MAIL FROM:<a@example.org>", "250")
	c.do("RCPT TO:<b@example.org>", "250")
	c.do("DATA", "354")
	c.send(data)
	return c.expect(want)
}

// expectClosed checks that the server closed the connection: nothing more
// arrives.
func (c *client) expectClosed() {
	c.t.Helper()
	b, err := c.r.ReadByte()
	if err == nil {
		rest, _ := c.r.ReadString('\n')
		c.t.Fatalf("want connection closed, got %q", string(b)+rest)
	}
	if !errors.Is(err, io.EOF) && !isConnReset(err) {
		c.t.Fatalf("want connection closed, got error %v", err)
	}
}

func isConnReset(err error) bool {
	return err != nil && strings.Contains(err.Error(), "connection reset")
}

// greeted dials addr, reads the greeting and sends EHLO.
func greeted(t testing.TB, addr string) *client {
	t.Helper()
	c := dial(t, addr)
	c.expect("220 ")
	c.do("EHLO client.test", "250 ")
	return c
}

// script runs a dialogue against addr. Lines starting "C: " are sent with
// CRLF; "S: " lines are reply lines the server must send, matched as
// prefixes; blank lines and lines starting with "#" are skipped. It reports
// failures with the script's line number.
func script(t testing.TB, addr, text string) {
	t.Helper()
	c := dial(t, addr)
	for i, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "C: "):
			c.send(line[3:] + "\r\n")
		case strings.HasPrefix(line, "S: "):
			got, err := c.r.ReadString('\n')
			if err != nil {
				t.Fatalf("script line %d: want %q, got error %v", i+1, line[3:], err)
			}
			if !strings.HasPrefix(got, line[3:]) || !strings.HasSuffix(got, "\r\n") {
				t.Fatalf("script line %d: want %q, got %q", i+1, line[3:], got)
			}
		case line == "closed":
			c.expectClosed()
		default:
			t.Fatalf("script line %d: cannot parse %q", i+1, line)
		}
	}
}
