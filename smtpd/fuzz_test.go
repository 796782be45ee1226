package smtpd

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/netip"
	"strconv"
	"testing"
	"time"
)

// scriptConn is a connection whose client sends in and then closes its
// side, and which keeps what the server wrote.
type scriptConn struct {
	in  *bytes.Reader
	out bytes.Buffer
}

func (c *scriptConn) Read(p []byte) (int, error)  { return c.in.Read(p) }
func (c *scriptConn) Write(p []byte) (int, error) { return c.out.Write(p) }
func (c *scriptConn) Close() error                { return nil }
func (c *scriptConn) LocalAddr() net.Addr         { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 25} }
func (c *scriptConn) RemoteAddr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}
}
func (c *scriptConn) SetDeadline(time.Time) error      { return nil }
func (c *scriptConn) SetReadDeadline(time.Time) error  { return nil }
func (c *scriptConn) SetWriteDeadline(time.Time) error { return nil }

// FuzzSession feeds arbitrary bytes to a session, as a client would send
// them, and checks what the server answers: only well-formed reply lines,
// never a panic, and the session ends when the input does.
func FuzzSession(f *testing.F) {
	for _, seed := range []string{
		"EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nhi\r\n.\r\nQUIT\r\n",
		"HELO [127.0.0.1]\r\nMAIL FROM:<> SIZE=10\r\n",
		"EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nhi\n.\nMAIL FROM:<e@f>\r\n.\r\n",
		"NOOP\nQUIT\r\n",
		"\r\n\r\n\x00\r\n",
		"EHLO x\r\nHELP mail\r\nVRFY a\r\nEXPN b\r\nTURN\r\n",
		"ehlo X\r\nmail from:<\"q u\"@[IPv6:::1]>\r\nrcpt to:<Postmaster>\r\ndata\r\n..\r\n.\r\n",
		"EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nBDAT 3\r\nabcNOOP\r\nBDAT 2 LAST\r\nde",
		"EHLO x\r\nBDAT 10 LAST\r\nQUIT\r\nQUIT\r\nNOOP\r\n",
		"EHLO x\r\nAUTH PLAIN AHUAcA==\r\nAUTH LOGIN\r\n*\r\nMAIL FROM:<a@b> AUTH=<>\r\n",
		"EHLO x\r\nAUTH LOGIN\r\ndQ==\r\ncA==\r\nSTARTTLS\r\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, input []byte) {
		srv := &Server{Hostname: "mx.test", AllowInsecureAuth: true,
			Authenticate: func(ctx context.Context, env *Envelope, identity, username, password string) error {
				if username == "u" && password == "p" {
					return nil
				}
				return ErrAuthFailed
			}}
		var events []TraceEvent
		srv.Trace = func(_, _ net.Addr) func(*TraceEvent) {
			return func(ev *TraceEvent) {
				e := *ev
				e.Data = bytes.Clone(ev.Data)
				events = append(events, e)
			}
		}
		conn := &scriptConn{in: bytes.NewReader(input)}
		c := srv.newConn(conn)
		srv.admit(netip.Addr{})
		srv.register(c)
		c.serve()
		replies := conn.out.Bytes()
		checkTrace(t, events, input, replies)
		if len(replies) == 0 {
			t.Fatal("no greeting")
		}
		r := bufio.NewReader(bytes.NewReader(replies))
		for {
			line, err := r.ReadBytes('\n')
			if err == io.EOF && len(line) == 0 {
				break
			}
			if err != nil || !bytes.HasSuffix(line, []byte("\r\n")) || len(line) < 6 {
				t.Fatalf("malformed reply %q", line)
			}
			code, cerr := strconv.Atoi(string(line[:3]))
			if cerr != nil || code < 200 || code > 599 || (line[3] != ' ' && line[3] != '-') {
				t.Fatalf("malformed reply %q", line)
			}
			if bytes.ContainsAny(line[:len(line)-2], "\r\n") {
				t.Fatalf("reply holds a line end: %q", line)
			}
		}
	})
}

// FuzzSplitCommand: the verb is a known verb or empty, and the argument is
// what follows the first space.
func FuzzSplitCommand(f *testing.F) {
	for _, seed := range []string{"MAIL FROM:<a@b>", "quit", "NOOP  ", "X", "", "STARTTLS x", "\x00 y"} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		verb, arg := splitCommand(line)
		if verb != "" && verbNames[verb] != verb {
			t.Fatalf("verb %q is not a known verb", verb)
		}
		if !bytes.Contains(line, []byte(arg)) {
			t.Fatalf("argument %q not in line %q", arg, line)
		}
	})
}
