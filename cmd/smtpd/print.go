package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	"smtpd/smtpd"
)

// printStore prints each complete message on w (standard output), in the
// seed's format: a "From <sender> <date>" line, then the message as
// received. The line ends stay CRLF, as received, and the From line and the
// blank line after the message use them too.
type printStore struct {
	mu sync.Mutex // one message at a time
	w  io.Writer
}

func (p *printStore) store(ctx context.Context, env *smtpd.Envelope, msg io.Reader) (string, error) {
	s, r, err := spoolAll(msg)
	if err != nil {
		return "", err
	}
	defer s.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	bw := bufio.NewWriterSize(p.w, 64<<10)
	fmt.Fprintf(bw, "From %s %s\r\n", fromLineSender(env), time.Now().UTC().Format(time.ANSIC))
	if _, err := io.Copy(bw, r); err != nil {
		return "", err
	}
	bw.WriteString("\r\n")
	if err := bw.Flush(); err != nil {
		return "", fmt.Errorf("standard output: %w", err)
	}
	return "stdout", nil
}

// discardStore reads each message and keeps nothing (-discard). Reading it
// all still matters: the client gets 250 only for a message that arrived
// whole.
type discardStore struct{}

func (discardStore) store(ctx context.Context, env *smtpd.Envelope, msg io.Reader) (string, error) {
	_, err := io.Copy(io.Discard, msg)
	return "discarded", err
}
