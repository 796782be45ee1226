package conformance

import (
	"context"
	"net"
	"time"

	"smtpd/internal/transcript"
)

// RunLocal replays t against a fresh in-process server configured by its
// header, on a loopback port, and checks the replies and then the
// deliveries. The deliveries are read once the server has ended the
// session (Shutdown waits for it), so no sleep decides when they are
// complete.
func RunLocal(t *transcript.Transcript) error {
	srv, rec, err := NewServer(t)
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	defer func() {
		srv.Close()
		<-done
	}()

	conn, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		return err
	}
	rerr := transcript.Replay(conn, t, transcript.Options{})
	conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	srv.Shutdown(ctx)
	if rerr != nil {
		return rerr
	}
	return transcript.CheckDeliveries(t, rec.Messages())
}
