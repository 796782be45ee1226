package conformance

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"smtpd/internal/transcript"
)

// RunLocal replays t against a fresh in-process server configured by its
// header, on a loopback port, and checks the replies and then the
// deliveries. The deliveries are read once the server has ended the
// session (Shutdown waits for it), so no sleep decides when they are
// complete.
//
// The client trusts the runner's own certificate (see the tls key) for
// the starttls event and for "tls: implicit", which serves with
// ServeTLS and dials with a TLS handshake. "hold-connections: N" opens N
// connections first, reads their greetings and keeps them open while the
// case runs, so that a case can meet max-connections. The shutdown event
// starts srv.Shutdown.
func RunLocal(t *transcript.Transcript) error {
	srv, rec, err := NewServer(t)
	if err != nil {
		return err
	}
	_, clientTLS, err := testTLS()
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	implicit := false
	if v, _ := t.Get("tls"); v == "implicit" {
		implicit = true
	}
	done := make(chan error, 1)
	go func() {
		if implicit {
			done <- srv.ServeTLS(l, "", "")
		} else {
			done <- srv.Serve(l)
		}
	}()
	defer func() {
		srv.Close()
		<-done
	}()

	dial := func() (net.Conn, error) {
		if implicit {
			d := &net.Dialer{Timeout: 10 * time.Second}
			return tls.DialWithDialer(d, "tcp", l.Addr().String(), clientTLS)
		}
		return net.Dial("tcp", l.Addr().String())
	}
	if v, ok := t.Get("hold-connections"); ok {
		n, _ := strconv.Atoi(v)
		for i := 0; i < n; i++ {
			c, err := dial()
			if err != nil {
				return err
			}
			defer c.Close()
			// Read the greeting, so the server has counted it.
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			if g, err := bufio.NewReader(c).ReadString('\n'); err != nil || !strings.HasPrefix(g, "220") {
				return fmt.Errorf("%s: held connection %d: greeting %q, %v", t.Name, i+1, g, err)
			}
		}
	}
	conn, err := dial()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	opt := transcript.Options{
		TLSConfig: clientTLS,
		Shutdown:  func() { go srv.Shutdown(ctx) },
	}
	rerr := transcript.Replay(conn, t, opt)
	conn.Close()
	srv.Shutdown(ctx)
	if rerr != nil {
		return rerr
	}
	return transcript.CheckDeliveries(t, rec.Messages())
}
