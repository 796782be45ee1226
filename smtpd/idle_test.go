package smtpd

import (
	"fmt"
	"net"
	"testing"
)

// idleRead is what a session held when it went to the network for input.
type idleRead struct {
	size   int  // the buffer it read into
	br, bw bool // it held a read buffer, a write buffer
}

// idleWatch is a connection that reports, from the session's goroutine
// (so without a race), the buffers the session holds at each read made
// while it waits for a command.
type idleWatch struct {
	net.Conn
	srv   *Server
	reads chan idleRead
	c     *conn
}

func (w *idleWatch) Read(p []byte) (int, error) {
	if w.c == nil {
		w.srv.mu.Lock()
		for c := range w.srv.conns {
			if c.rwc == w {
				w.c = c
			}
		}
		w.srv.mu.Unlock()
	}
	if w.c.in.command {
		w.reads <- idleRead{size: len(p), br: w.c.br != nil, bw: w.c.bw != nil}
	}
	return w.Conn.Read(p)
}

// TestIdleSessionHoldsNoBuffers: a session waiting for a command holds no
// pooled read or write buffer, only its small wake array, so that 10,000
// idle sessions cost little memory (issue 10; go run ./internal/idlemem
// measures it). Only the wait for the first command, in the greeting
// phase, reads through the pooled reader.
func TestIdleSessionHoldsNoBuffers(t *testing.T) {
	reads := make(chan idleRead, 64)
	srv := &Server{Hostname: "mx.test", Handler: &recorder{}}
	srv.WrapConn = func(c net.Conn) net.Conn { return &idleWatch{Conn: c, srv: srv, reads: reads} }
	addr := startServer(t, srv)

	c := greeted(t, addr)
	c.message("Subject: idle\r\n\r\nbody\r\n.\r\n", "250")
	c.do("NOOP", "250")
	c.do("QUIT", "221")
	c.expectClosed()

	// Every wait's read was reported before the reply to the command it
	// waited for could be sent, so all are in the channel now.
	close(reads)
	var waits []idleRead
	for r := range reads {
		waits = append(waits, r)
	}
	// The waits for EHLO (in the greeting phase), MAIL, RCPT, DATA, NOOP
	// and QUIT.
	if len(waits) != 6 {
		t.Fatalf("%d reads while waiting for a command, want 6: %+v", len(waits), waits)
	}
	const wake = len((*conn)(nil).wake)
	for i, r := range waits[1:] {
		if r.br || r.bw || r.size != wake {
			t.Errorf("wait %d: read %d octets holding read buffer %v, write buffer %v; want %d and neither",
				i+1, r.size, r.br, r.bw, wake)
		}
	}
}

// TestPipelinedGroupLongerThanWake: a pipelined group (RFC 2920) that
// arrives in one write but is longer than the wake array an idle session
// reads into is read whole, every command answered in order.
func TestPipelinedGroupLongerThanWake(t *testing.T) {
	rec := &recorder{}
	addr := startServer(t, &Server{Hostname: "mx.test", Handler: rec})
	c := greeted(t, addr)
	const rcpts = 40 // 40 lines of 27 octets: twice the wake array
	group := "MAIL FROM:<a@example.org>\r\n"
	for i := range rcpts {
		group += fmt.Sprintf("RCPT TO:<b%03d@example.org>\r\n", i)
	}
	if len(group) <= 2*len((*conn)(nil).wake) {
		t.Fatalf("the group is %d octets, not longer than twice the wake array", len(group))
	}
	c.send(group + "DATA\r\n")
	c.expect("250")
	for range rcpts {
		c.expect("250")
	}
	c.expect("354")
	c.send("Subject: long group\r\n\r\nbody\r\n.\r\n")
	c.expect("250")
	if d := rec.delivered(); len(d) != 1 || len(d[0].env.Recipients) != rcpts {
		t.Fatalf("delivered %+v, want one message to %d recipients", d, rcpts)
	}
}
