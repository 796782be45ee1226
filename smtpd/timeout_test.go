package smtpd

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// Timeouts that span more than one read: MessageTimeout over BDAT chunks,
// DeliveryTimeout for every message of a session, and "no limit".

// TestBDATMessageTimeout: MessageTimeout spans the whole message however
// many chunks it comes in, and the commands between them: a client that
// sends a 1-byte chunk, or a NOOP, well within every other timeout is cut
// off at MessageTimeout from the first chunk. (Each chunk used to restart
// it: a chunk every 3 s held a session for 33 minutes with "-timeout 5s".)
func TestBDATMessageTimeout(t *testing.T) {
	rec := &recorder{}
	addr := startServer(t, &Server{Handler: rec, MessageTimeout: 300 * time.Millisecond})
	for _, between := range []string{"BDAT 1\r\nx", "NOOP\r\n"} {
		c := greeted(t, addr)
		c.do("MAIL FROM:<a@example.org>", "250")
		c.do("RCPT TO:<b@example.org>", "250")
		c.send("BDAT 1\r\nx")
		c.expect("250 2.0.0 1 chunks received")
		conn := c.conn
		const steps = 40 // 2 s at the pace below, over six times MessageTimeout
		go func() {
			for i := 0; i < steps; i++ {
				if _, err := io.WriteString(conn, between); err != nil {
					return
				}
				time.Sleep(50 * time.Millisecond) // pacing the client, not synchronising
			}
			io.WriteString(conn, "BDAT 1 LAST\r\nx")
		}()
		for n := 0; ; n++ {
			lines := c.readReply()
			last := lines[len(lines)-1]
			if strings.HasPrefix(last, "421 4.4.2") {
				break
			}
			if !strings.HasPrefix(last, "250 ") || n == steps {
				t.Fatalf("%q between chunks: got %q after %d replies, want 421 4.4.2 before the message ends", between, last, n)
			}
		}
		c.expectClosed()
	}
	if n := len(rec.delivered()); n != 0 {
		t.Fatalf("%d messages delivered", n)
	}
}

// TestDeliveryTimeoutEachMessage: every message of a session gets its own
// DeliveryTimeout; a Handler that waits for its context and returns its
// error gets the client 451, for the second message as for the first. (The
// timer of the first used to stay, so the second's context never ended.)
func TestDeliveryTimeoutEachMessage(t *testing.T) {
	ended := make(chan error, 2)
	srv := &Server{DeliveryTimeout: 100 * time.Millisecond,
		Handler: HandlerFunc(func(ctx context.Context, env *Envelope, msg io.Reader) error {
			io.Copy(io.Discard, msg)
			<-ctx.Done()
			ended <- ctx.Err()
			return ctx.Err()
		})}
	c := greeted(t, startServer(t, srv))
	for i := 0; i < 2; i++ {
		c.message("x\r\n.\r\n", "451 4.3.0")
		if err := <-ended; !errors.Is(err, context.Canceled) {
			t.Fatalf("message %d: context ended with %v", i+1, err)
		}
	}
	c.do("MAIL FROM:<a@example.org>", "250")
	c.do("RCPT TO:<b@example.org>", "250")
	c.send("BDAT 1 LAST\r\nx")
	c.expect("451 4.3.0")
	c.do("NOOP", "250")
}

// TestDeliveryTimeoutDefault: by default the server gives up on a Handler
// well before the client gives up on the server, which waits 10 minutes
// for the reply to the message (RFC 5321 4.5.3.2.6); with both at 10
// minutes the client could send again a message that was stored.
func TestDeliveryTimeoutDefault(t *testing.T) {
	const client = 10 * time.Minute
	if d := limitOf((&Server{}).DeliveryTimeout, DefaultDeliveryTimeout); d <= 0 || d > client/2 {
		t.Fatalf("default DeliveryTimeout %v, want at most %v", d, client/2)
	}
}

// TestNoTimeouts: a negative timeout means no limit, as the Server's doc
// says of every limit (and cmd/smtpd's "-timeout 0" relies on); it used to
// be a deadline of now, which ended every session before its greeting.
func TestNoTimeouts(t *testing.T) {
	serverTLS, clientTLS := testTLS(t)
	rec := &recorder{}
	srv := &Server{Handler: rec, TLSConfig: serverTLS, CommandTimeout: -1, DataTimeout: -1,
		MessageTimeout: -1, DeliveryTimeout: -1, TLSHandshakeTimeout: -1}
	c := greeted(t, startServer(t, srv))
	c.do("NOOP", "250")
	c.message("x\r\n.\r\n", "250")
	c.do("MAIL FROM:<a@example.org>", "250")
	c.do("RCPT TO:<b@example.org>", "250")
	c.send("BDAT 1\r\nx")
	c.expect("250")
	c.send("BDAT 1 LAST\r\ny")
	c.expect("250")
	c.startTLS(clientTLS)
	c.do("EHLO client.test", "250")
	if n := len(rec.delivered()); n != 2 {
		t.Fatalf("%d messages delivered, want 2", n)
	}
}

// TestKeepDeadline: a lazy deadline (setDeadline) stays only while it is
// not later than the limit and at least half the time to the limit is left
// on it.
func TestKeepDeadline(t *testing.T) {
	now := time.Now()
	at := func(d time.Duration) time.Time { return now.Add(d) }
	for _, tc := range []struct {
		name         string
		armed, limit time.Time
		keep         bool
	}{
		{"none armed", time.Time{}, at(time.Minute), false},
		{"no limit", at(time.Minute), time.Time{}, false},
		{"exact", at(time.Minute), at(time.Minute), true},
		{"earlier, over half left", at(3 * time.Minute), at(5 * time.Minute), true},
		{"earlier, half left", at(time.Minute), at(2 * time.Minute), true},
		{"earlier, under half left", at(time.Minute), at(5 * time.Minute), false},
		{"later than the limit", at(5 * time.Minute), at(3 * time.Minute), false},
		{"passed", at(-time.Second), at(time.Minute), false},
	} {
		if got := keepDeadline(tc.armed, tc.limit, now); got != tc.keep {
			t.Errorf("%s: keepDeadline = %v, want %v", tc.name, got, tc.keep)
		}
	}
}

// tcpPair returns the two ends of a loopback TCP connection: the server's
// and the client's.
func tcpPair(t *testing.T) (server, client net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	client, err = net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err = l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Close(); client.Close() })
	return server, client
}

// TestLazyDeadlineGoesOn: over TCP the connection's deadline may be
// earlier than the limit of the read or write under way (setDeadline); a
// read or write that times out there goes on, and only its limit ends it.
func TestLazyDeadlineGoesOn(t *testing.T) {
	server, client := tcpPair(t)
	c := (&Server{}).newConn(server)
	defer c.free()
	if !c.lazyDeadline {
		t.Fatal("no lazy deadline over TCP")
	}
	armEarly := func() {
		c.armed = time.Now().Add(20 * time.Millisecond)
		c.stream.SetDeadline(c.armed)
	}

	armEarly()
	go func() {
		time.Sleep(200 * time.Millisecond) // past the armed deadline, pacing the client
		io.WriteString(client, "NOOP\r\n")
	}()
	var buf [64]byte
	if n, err := c.in.readBy(buf[:], time.Now().Add(time.Minute)); err != nil || string(buf[:n]) != "NOOP\r\n" {
		t.Fatalf("read past the armed deadline: %q, %v", buf[:n], err)
	}
	limit := time.Now().Add(50 * time.Millisecond)
	c.setDeadline(limit, time.Now())
	var ne net.Error
	if _, err := c.in.readBy(buf[:], limit); !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("read past its limit: %v, want a timeout", err)
	}

	// A write that the client's slow reading holds past the armed deadline.
	armEarly()
	c.writeBy = time.Now().Add(time.Minute)
	big := make([]byte, 16<<20) // more than the socket buffers hold
	got := make(chan int64)
	go func() {
		time.Sleep(200 * time.Millisecond)
		n, _ := io.CopyN(io.Discard, client, int64(len(big)))
		got <- n
	}()
	if n, err := c.wr.Write(big); n != len(big) || err != nil {
		t.Fatalf("write past the armed deadline: %d of %d octets, %v", n, len(big), err)
	}
	if n := <-got; n != int64(len(big)) {
		t.Fatalf("client read %d octets, want %d", n, len(big))
	}
}

// TestLazyDeadlineStaysForData: a lazy deadline set for a command is set
// no further ahead than the shorter DataTimeout, so that the message's
// data, whose reads must each end within DataTimeout, keeps it
// (setDeadline).
func TestLazyDeadlineStaysForData(t *testing.T) {
	server, _ := tcpPair(t)
	c := (&Server{CommandTimeout: 5 * time.Minute, DataTimeout: 3 * time.Minute}).newConn(server)
	defer c.free()
	now := time.Now()
	c.setDeadline(now.Add(5*time.Minute), now)
	if want := now.Add(3 * time.Minute); !c.armed.Equal(want) {
		t.Fatalf("deadline for a command %v from now, want %v", c.armed.Sub(now), want.Sub(now))
	}
	armed := c.armed
	later := now.Add(time.Second)
	c.setDeadline(later.Add(3*time.Minute), later)
	if !c.armed.Equal(armed) {
		t.Fatalf("the data's read moved the deadline to %v from the command's", c.armed.Sub(armed))
	}
	c.setDeadline(time.Time{}, later)
	if !c.armed.IsZero() {
		t.Fatalf("no limit: deadline %v, want none", c.armed.Sub(now))
	}
}
