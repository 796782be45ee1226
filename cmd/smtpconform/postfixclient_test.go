//go:build linux

package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/smtp"
	"strings"
	"sync"
	"testing"
	"time"

	"smtpd/smtpd"
)

// TestPostfixClientPipelines relays mail through a private Postfix to the
// library, so that Postfix's smtp(8) client, which pipelines as RFC 2920
// allows (MAIL, RCPT, DATA in one write; the message end with QUIT, or
// RSET and the next transaction on a cached connection), meets the
// library's pipelining check, which is on by default. Every message must
// arrive, and the check must refuse nothing.
func TestPostfixClientPipelines(t *testing.T) {
	var (
		mu    sync.Mutex
		reads [][]byte // what the library read from Postfix, read by read
		wrote bytes.Buffer
	)
	delivered := make(chan string, 10)
	srv := &smtpd.Server{Hostname: "sink.test",
		WrapConn: func(c net.Conn) net.Conn { return &tapConn{Conn: c, mu: &mu, reads: &reads, wrote: &wrote} },
		Handler: smtpd.HandlerFunc(func(ctx context.Context, env *smtpd.Envelope, msg io.Reader) error {
			b, err := io.ReadAll(msg)
			delivered <- string(b)
			return err
		})}
	addr := serve(t, srv)
	_, port, _ := net.SplitHostPort(addr)
	p := newPostfixRelay(t, false, "[127.0.0.1]:"+port)

	const n = 3
	for i := range n {
		c, err := smtp.Dial(p.addr) // no STARTTLS: net/smtp would not trust its certificate
		if err != nil {
			t.Fatal(err)
		}
		err = c.Hello("client.test")
		if err == nil {
			err = c.Mail("alice@example.org")
		}
		for _, rcpt := range []string{"bob@relay.example", "carol@relay.example"} {
			if err == nil {
				err = c.Rcpt(rcpt)
			}
		}
		var w io.WriteCloser
		if err == nil {
			w, err = c.Data()
		}
		if err == nil {
			fmt.Fprintf(w, "Subject: relayed %d\r\n\r\nbody %d\r\n", i, i)
			err = w.Close()
		}
		if err != nil {
			t.Fatalf("submitting to Postfix: %v\n%s", err, p.log())
		}
		c.Quit()
	}
	for range n {
		select {
		case m := <-delivered:
			if !strings.Contains(m, "Subject: relayed ") {
				t.Errorf("delivered %q", m)
			}
		case <-time.After(time.Minute):
			t.Fatalf("Postfix did not relay every message in a minute\n%s", p.log())
		}
	}

	mu.Lock()
	defer mu.Unlock()
	if strings.Contains("\n"+wrote.String(), "\n554 ") {
		t.Errorf("the library refused Postfix: %q", wrote.String())
	}
	pipelined := false
	for _, r := range reads {
		if bytes.Contains(r, []byte("MAIL FROM:")) && bytes.HasSuffix(r, []byte("\r\nDATA\r\n")) {
			pipelined = true
		}
	}
	if !pipelined {
		t.Errorf("Postfix did not pipeline MAIL, RCPT and DATA: %q", reads)
	}
}

// tapConn keeps what a connection read, read by read, and what it wrote.
type tapConn struct {
	net.Conn
	mu    *sync.Mutex
	reads *[][]byte
	wrote *bytes.Buffer
}

func (c *tapConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.mu.Lock()
	*c.reads = append(*c.reads, bytes.Clone(p[:n]))
	c.mu.Unlock()
	return n, err
}

func (c *tapConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.wrote.Write(p)
	c.mu.Unlock()
	return c.Conn.Write(p)
}
