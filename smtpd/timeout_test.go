package smtpd

import (
	"context"
	"errors"
	"io"
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
