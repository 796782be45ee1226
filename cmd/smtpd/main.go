// Command smtpd is a mail sink for development: it receives mail on a local
// port and prints each message to standard output, or discards it, instead
// of delivering it (the purpose of tcllib's smtpd).
//
//	go run ./cmd/smtpd                 # listen on 127.0.0.1:2525, print messages
//	go run ./cmd/smtpd -discard        # accept and drop, for load tests
//
// Send it mail with any client, e.g.
//
//	swaks --server 127.0.0.1:2525 --to someone@example.org
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"

	"smtpd/smtpd"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:2525", "listen address `host:port`")
	hostname := flag.String("hostname", "", "name in the greeting, EHLO reply and Received field (default: the machine's host name)")
	banner := flag.String("banner", "", "greeting text after \"220 <hostname> ESMTP\" (default \"smtpd\")")
	discard := flag.Bool("discard", false, "accept and drop every message, as fast as possible (load testing)")
	verbose := flag.Bool("v", false, "log every command (never message content)")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "smtpd: unexpected argument %q\n", flag.Arg(0))
		os.Exit(2)
	}

	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	srv := &smtpd.Server{
		Hostname: *hostname,
		Banner:   *banner,
		Logger:   slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})),
	}
	if *discard {
		srv.Logger = nil // a log line per session would cost more than the session
	} else {
		srv.Handler = &printer{w: os.Stdout}
	}

	l, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "smtpd: %v\n", err)
		os.Exit(2)
	}
	fmt.Fprintf(os.Stderr, "smtpd: listening on %s\n", l.Addr())

	// SIGINT or SIGTERM: stop gracefully, letting messages in flight finish;
	// a second signal stops at once.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	stopped := make(chan struct{})
	go func() {
		<-sigs
		ctx, cancel := context.WithCancel(context.Background())
		go func() { <-sigs; cancel() }()
		if err := srv.Shutdown(ctx); err != nil {
			srv.Close()
		}
		close(stopped)
	}()
	if err := srv.Serve(l); err != smtpd.ErrServerClosed {
		fmt.Fprintf(os.Stderr, "smtpd: %v\n", err)
		os.Exit(1)
	}
	<-stopped
}

// printer writes each message to w, framed by its envelope, one message at a
// time.
type printer struct {
	mu sync.Mutex
	w  io.Writer
}

func (p *printer) ServeSMTP(ctx context.Context, env *smtpd.Envelope, msg io.Reader) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	var to []string
	for _, r := range env.Recipients {
		to = append(to, "<"+r.ForwardPath.String()+">")
	}
	fmt.Fprintf(p.w, "=== message %s from <%s> to %s\n", env.ID, env.ReversePath, strings.Join(to, ", "))
	if _, err := io.Copy(p.w, msg); err != nil {
		return err
	}
	fmt.Fprintf(p.w, "=== end of message %s\n", env.ID)
	return nil
}
