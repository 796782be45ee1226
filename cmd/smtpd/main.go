// Command smtpd receives mail over SMTP and keeps it where you can look at
// it instead of delivering it: the purpose of tcllib's smtpd, which let
// developers test code that sends mail from their workstation. It is also a
// load-test target like Postfix's smtp-sink (-discard), and a small
// receiving server that hands mail to a real delivery program (-exec).
//
//	go run ./cmd/smtpd                      # 127.0.0.1:2525, print each message
//	go run ./cmd/smtpd -maildir ~/Maildir   # store for mutt, Python's mailbox, ...
//	go run ./cmd/smtpd -mbox sink.mbox      # append to an mbox
//	go run ./cmd/smtpd -exec 'procmail'     # pipe each message to a command
//	go run ./cmd/smtpd -discard -quiet      # accept and drop, for load tests
//
// Send it mail with any client, e.g.
//
//	swaks --server 127.0.0.1:2525 --to someone@example.org
//
// To test a program's TLS and AUTH, as a submission server would offer
// them: -tls-self-signed makes a certificate at start (clients must be
// told not to verify it; -tls-cert and -tls-key take a real one),
// -tls-addr adds a port with implicit TLS (RFC 8314), and -auth-file lists
// the users who may authenticate, one "user:password" a line. AUTH is
// offered only over TLS, unless -auth-insecure.
//
//	echo 'alice:secret' > users
//	go run ./cmd/smtpd -tls-self-signed -tls-addr 127.0.0.1:4650 -auth-file users -auth-required
//	swaks --server 127.0.0.1:2525 --tls --auth-user alice --auth-password secret --to someone@example.org
//	swaks --server 127.0.0.1:4650 --tls-on-connect --auth-user alice --auth-password secret --to someone@example.org
//
// -record DIR writes each session, TLS included, into DIR as a transcript
// of the conformance suite (AUTH passwords masked), so that a real
// client's session can be replayed against the library:
//
//	go run ./cmd/smtpd -hostname mx.test -record /tmp/rec
//
// -http serves a web inbox: the messages the store holds (or, for the
// stores that cannot be read back, the last -http-keep in memory), their
// parts, the SMTP session that delivered each, and mailpit's JSON API:
//
//	go run ./cmd/smtpd -maildir /tmp/mail -http 127.0.0.1:8025
//
// Behind a proxy that sends the PROXY protocol, -proxy-protocol with
// -proxy-trusted takes the client's address from it; -lmtp speaks LMTP
// (RFC 2033), for a delivery agent's tests.
//
// Every stored message begins with "Return-Path: <sender>", one
// "Delivered-To: <recipient>" per recipient and the Received field, then
// the message as received. The client gets 250 only once the message is
// durably stored. SIGINT or SIGTERM stops the server gracefully: messages
// being received are finished first, for at most -shutdown-timeout, after
// which the sessions still open are closed; a second signal stops at once,
// and the exit status is then 1.
//
// Run "smtpd -help" for every flag.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"smtpd/smtpd"
)

func main() {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr, sigs))
}

// Exit statuses.
const (
	exitOK      = 0
	exitFailure = 1 // the server failed while running, or a second signal stopped it at once
	exitUsage   = 2 // the configuration cannot work: nothing was started
)

// run is the program: it returns the exit status. Every problem with the
// configuration is found before anything listens, and reported as one line
// on stderr.
func run(args []string, stdout, stderr io.Writer, sigs <-chan os.Signal) int {
	cfg, err := parseConfig(args, stdout)
	if errors.Is(err, errHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "smtpd: %v\n", err)
		return exitUsage
	}
	if cfg.procs > 0 {
		runtime.GOMAXPROCS(cfg.procs) // see defaultProcs
	}
	st, err := openStore(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "smtpd: %v\n", err)
		return exitUsage
	}
	tlsConfig, fingerprint, err := loadTLS(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "smtpd: %v\n", err)
		return exitUsage
	}
	var users passwords
	if cfg.authFile != "" {
		if users, err = loadPasswords("-auth-file", cfg.authFile); err != nil {
			fmt.Fprintf(stderr, "smtpd: %v\n", err)
			return exitUsage
		}
	}
	// -discard is for load tests: a log line per message would cost more
	// than the message, so it logs only errors unless -v asks for more.
	quiet := cfg.quiet || cfg.discard && !cfg.verbose
	log := newLogger(cfg.logFormat, cfg.verbose, quiet, stderr)
	d := &deliverer{store: st, log: log}
	var web *webListener
	if cfg.http != "" {
		if d.inbox, web, err = openWeb(cfg, log); err != nil {
			fmt.Fprintf(stderr, "smtpd: %v\n", err)
			return exitUsage
		}
	}
	srv := newServer(cfg, log, d, tlsConfig, users)
	var rec *recorder
	if cfg.record != "" {
		if rec, err = newRecorder(cfg, tlsConfig != nil, users != nil, log); err != nil {
			fmt.Fprintf(stderr, "smtpd: %v\n", err)
			return exitUsage
		}
	}
	var verbose, recording, sessions tracer
	if cfg.verbose {
		verbose = verboseTracer(log)
	}
	if rec != nil {
		recording = rec.trace
	}
	if d.inbox != nil {
		sessions = d.inbox.trace
	}
	srv.Trace = traceAll(verbose, recording, sessions)

	listeners, err := listen(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "smtpd: %v\n", err)
		web.close()
		return exitUsage
	}
	if fingerprint != "" {
		// Printed whatever the log level: a client needs it to pin the
		// certificate.
		fmt.Fprintf(stderr, "smtpd: self-signed certificate for %s sha256=%s\n", cfg.hostname, fingerprint)
	}
	if web != nil {
		// Printed before the listening lines, which tests wait for.
		if cfg.logFormat == "json" {
			slog.New(slog.NewJSONHandler(stderr, nil)).Info("inbox", "url", web.url)
		} else {
			fmt.Fprintf(stderr, "smtpd: inbox on %s\n", web.url)
		}
	}
	log.Debug("started", "procs", runtime.GOMAXPROCS(0)) // with -v
	for _, l := range listeners {
		// Tests and scripts read this line to learn the port of
		// "-addr 127.0.0.1:0"; it is printed even with -quiet.
		switch {
		case cfg.logFormat == "json":
			slog.New(slog.NewJSONHandler(stderr, nil)).Info("listening", "addr", l.Addr().String(), "tls", l.tls)
		case l.tls:
			fmt.Fprintf(stderr, "smtpd: listening on %s (TLS)\n", l.Addr())
		default:
			fmt.Fprintf(stderr, "smtpd: listening on %s\n", l.Addr())
		}
	}

	// Serve every listener; the first to fail for a reason other than
	// shutdown stops the others.
	serveErr := make(chan error, len(listeners)+1)
	if web != nil {
		go func() { serveErr <- web.serve() }()
	}
	for _, l := range listeners {
		go func(l listener) {
			if l.tls {
				// ServeTLS, not a tls.NewListener: the library then runs
				// the handshake itself, within its handshake timeout, so
				// a client that never finishes it cannot hold a connection.
				serveErr <- srv.ServeTLS(l, "", "")
			} else {
				serveErr <- srv.Serve(l)
			}
		}(l)
	}

	status := exitOK
	select {
	case err := <-serveErr:
		fmt.Fprintf(stderr, "smtpd: %v\n", err)
		srv.Close()
		status = exitFailure
	case sig := <-sigs:
		if forced := shutdown(srv, sig, sigs, cfg.shutdownTimeout, log); forced {
			status = exitFailure
		}
	}
	// Whatever stopped the server, a delivery in flight is finished (or,
	// after Close cancelled it, rolled back) before the process exits, so
	// that no file is left half-written.
	d.inFlight.wait()
	web.close()
	return status
}

// listener is one of the program's listeners; tls means implicit TLS.
type listener struct {
	net.Listener
	tls bool
}

// listen opens the listeners cfg asks for: -addr, and -tls-addr when set.
func listen(cfg *config) ([]listener, error) {
	l, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return nil, fmt.Errorf("-addr: %v", err)
	}
	listeners := []listener{{Listener: l}}
	if cfg.tlsAddr != "" {
		tl, err := net.Listen("tcp", cfg.tlsAddr)
		if err != nil {
			l.Close()
			return nil, fmt.Errorf("-tls-addr: %v", err)
		}
		listeners = append(listeners, listener{Listener: tl, tls: true})
	}
	return listeners, nil
}

// errStopNow is the cause of the shutdown's end when a second signal asks
// to stop at once.
var errStopNow = errors.New("stopped at once")

// shutdown stops srv gracefully after the signal sig: listeners close,
// idle sessions get 421, and sessions in the middle of a message finish it.
// After timeout (when not 0), or at a second signal, the sessions still
// open are closed, those in a TLS handshake included, and deliveries in
// flight are cancelled (an -exec command is killed); their clients get no
// 250, so they will send again. It reports whether a second signal forced
// the stop, for the exit status: a script must not take it for a clean one.
func shutdown(srv *smtpd.Server, sig os.Signal, sigs <-chan os.Signal, timeout time.Duration, log *slog.Logger) (forced bool) {
	log.Warn("shutting down; signal again to stop at once", "signal", sig.String(), "timeout", timeout.String())
	ctx, stop := context.WithCancelCause(context.Background())
	defer stop(nil)
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	go func() {
		select {
		case sig := <-sigs:
			log.Warn("stopping at once", "signal", sig.String())
			stop(errStopNow)
		case <-ctx.Done():
		}
	}()
	if err := srv.Shutdown(ctx); err == nil {
		return false
	}
	forced = errors.Is(context.Cause(ctx), errStopNow)
	if !forced {
		log.Warn("closing the sessions still open", "after", timeout.String())
	}
	srv.Close()
	return forced
}
