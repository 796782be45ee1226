package smtpd

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The lifecycle: net/http's contract for Serve, Shutdown and Close.

// TestShutdown: idle sessions get 421 4.3.2 and are closed; a session in
// the middle of a message finishes it (250, delivered), then gets 421;
// Serve returns ErrServerClosed; Shutdown returns nil once all are gone.
func TestShutdown(t *testing.T) {
	inHandler := make(chan struct{})
	release := make(chan struct{})
	rec := &recorder{}
	srv := &Server{Hostname: "mx.test", Handler: HandlerFunc(func(ctx context.Context, env *Envelope, msg io.Reader) error {
		close(inHandler)
		<-release
		return rec.ServeSMTP(ctx, env, msg)
	})}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	addr := l.Addr().String()

	idle := greeted(t, addr)
	inTransaction := greeted(t, addr)
	inTransaction.do("MAIL FROM:<a@example.org>", "250")
	busy := greeted(t, addr)
	busy.do("MAIL FROM:<a@example.org>", "250")
	busy.do("RCPT TO:<b@example.org>", "250")
	busy.do("DATA", "354")
	busy.send("Subject: in flight\r\n\r\nbody\r\n")
	<-inHandler

	shutdown := make(chan error, 1)
	go func() { shutdown <- srv.Shutdown(context.Background()) }()

	idle.expect("421 4.3.2")
	idle.expectClosed()
	inTransaction.expect("421 4.3.2")
	inTransaction.expectClosed()
	if err := <-served; !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve returned %v", err)
	}
	if _, err := net.Dial("tcp", addr); err == nil {
		t.Fatal("listener still accepts")
	}
	select {
	case err := <-shutdown:
		t.Fatalf("Shutdown returned %v while a message was in flight", err)
	default:
	}

	busy.send(".\r\n")
	close(release)
	busy.expect("250 2.0.0")
	busy.expect("421 4.3.2") // at its next command wait
	busy.expectClosed()
	if err := <-shutdown; err != nil {
		t.Fatalf("Shutdown returned %v", err)
	}
	if n := len(rec.delivered()); n != 1 {
		t.Fatalf("%d messages delivered, want 1", n)
	}

	// After Shutdown, Serve and ListenAndServe refuse at once.
	l2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Serve(l2); !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve after Shutdown: %v", err)
	}
	if err := srv.ListenAndServe(); !errors.Is(err, ErrServerClosed) {
		t.Fatalf("ListenAndServe after Shutdown: %v", err)
	}
}

// TestClose: Close ends every session and Serve returns ErrServerClosed
// (go-smtp returned nil).
func TestClose(t *testing.T) {
	srv := &Server{}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	c := greeted(t, l.Addr().String())
	srv.Close()
	if err := <-served; !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve returned %v", err)
	}
	// Told why first (RFC 5321 3.8), then cut off.
	c.expect("421 ")
	c.expectClosed()
}

// TestListenAndServe: Addr is used, and the server answers there.
func TestListenAndServe(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // a free port to hand to ListenAndServe
	srv := &Server{Addr: addr, Hostname: "las.test"}
	served := make(chan error, 1)
	go func() { served <- srv.ListenAndServe() }()
	var conn net.Conn
	for i := 0; i < 200; i++ { // until the listener is up
		if conn, err = net.Dial("tcp", addr); err == nil {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if conn == nil {
		t.Fatal(err)
	}
	c := &client{t: t, conn: conn, r: bufio.NewReader(conn)}
	c.expect("220 las.test")
	srv.Close()
	if err := <-served; !errors.Is(err, ErrServerClosed) {
		t.Fatalf("ListenAndServe returned %v", err)
	}
}

// TestShutdownClientNotReading: Shutdown writes nothing itself, so a
// session whose 421 cannot be written (a client that does not read, behind
// a write that does not return) delays neither the other sessions' 421 nor
// Shutdown's return when its context ends; Close then ends it. Shutdown used
// to write each 421 itself while holding the server's lock.
func TestShutdownClientNotReading(t *testing.T) {
	wrapped := make(chan *stallConn, 2)
	srv := &Server{WrapConn: func(c net.Conn) net.Conn {
		s := &stallConn{Conn: c, closed: make(chan struct{})}
		wrapped <- s
		return s
	}}
	addr := startServer(t, srv)
	stuck := greeted(t, addr) // idle, its replies all written
	(<-wrapped).stall.Store(true)
	other := greeted(t, addr)
	<-wrapped

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	shutdown := make(chan error, 1)
	go func() { shutdown <- srv.Shutdown(ctx) }()
	other.expect("421 4.3.2")
	other.expectClosed()
	select {
	case err := <-shutdown:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Shutdown returned %v, want context.DeadlineExceeded", err)
		}
	case <-time.After(10 * time.Second): // a bound for a broken server, not a measure
		t.Fatal("Shutdown did not return when its context ended")
	}
	srv.Close()
	stuck.expectClosed()
}

// stallConn is a connection whose writes, once stall is set, do not return
// until it is closed, deadline or not.
type stallConn struct {
	net.Conn
	stall  atomic.Bool
	closed chan struct{}
	once   sync.Once
}

func (c *stallConn) Write(p []byte) (int, error) {
	if c.stall.Load() {
		<-c.closed
		return 0, net.ErrClosed
	}
	return c.Conn.Write(p)
}

func (c *stallConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return c.Conn.Close()
}

// TestShutdownThenClose: when Shutdown's context ends while a message is
// being delivered, Shutdown gives up and leaves the session; Close then
// ends it with 421 and cancels the Handler's context. No 250 reaches the
// client after Close, even from a Handler that stores the message and
// returns nil when its context ends: the client will send the message
// again, a duplicate, never a loss.
func TestShutdownThenClose(t *testing.T) {
	for _, tc := range []struct {
		name    string
		returns func(ctx context.Context) error
	}{
		{"handler fails", func(ctx context.Context) error { return ctx.Err() }},
		{"handler stores", func(context.Context) error { return nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inHandler := make(chan struct{})
			handlerErr := make(chan error, 1)
			srv := &Server{Handler: HandlerFunc(func(ctx context.Context, env *Envelope, msg io.Reader) error {
				io.Copy(io.Discard, msg)
				close(inHandler)
				<-ctx.Done() // Close cancels ctx
				handlerErr <- ctx.Err()
				return tc.returns(ctx)
			})}
			addr := startServer(t, srv)
			c := greeted(t, addr)
			c.do("MAIL FROM:<a@example.org>", "250")
			c.do("RCPT TO:<b@example.org>", "250")
			c.do("DATA", "354")
			c.send("body\r\n.\r\n")
			<-inHandler
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			if err := srv.Shutdown(ctx); !errors.Is(err, context.Canceled) {
				t.Fatalf("Shutdown returned %v, want context.Canceled", err)
			}
			srv.Close()
			if err := <-handlerErr; !errors.Is(err, context.Canceled) {
				t.Fatalf("handler's context ended with %v", err)
			}
			// In the middle of the message's delivery: 421, never 250.
			c.expect("421 ")
			c.expectClosed()
		})
	}
}
