package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"time"

	"smtpd/smtpd"
)

// config is the program's configuration, built from the command line by
// parseConfig and checked there, so that everything after it (newServer,
// openStore, the listeners) can trust it. A flag adds a field here, a line
// in newFlagSet, a check in check, and its use in newServer or listen.
type config struct {
	addr     string // -addr
	hostname string // -hostname
	banner   string // -banner
	lmtp     bool   // -lmtp

	// TLS: a certificate from files or made up at start, at most one.
	tlsCert       string // -tls-cert
	tlsKey        string // -tls-key
	tlsSelfSigned bool   // -tls-self-signed
	tlsAddr       string // -tls-addr: implicit TLS (RFC 8314) as well

	authFile     string // -auth-file
	authInsecure bool   // -auth-insecure
	authRequired bool   // -auth-required

	proxyProtocol bool     // -proxy-protocol
	proxyTrusted  hostList // -proxy-trusted

	// Where messages go: at most one of these is set; none means standard
	// output.
	maildir string // -maildir
	mbox    string // -mbox
	execCmd string // -exec
	discard bool   // -discard

	// The library's limits, in the library's terms: 0 means its default,
	// a negative value no limit.
	maxSize       int64         // -max-size
	maxRecipients int           // -max-recipients
	maxConns      int           // -max-conns
	timeout       time.Duration // -timeout
	// -max-conns-per-ip: in the library's terms on the command line too,
	// since its default depends on -max-conns and 0 must ask for it.
	maxConnsPerIP int

	// The message's timeouts, passed to the library as they are: 0, the
	// flags' default, takes the library's default. Negative values are
	// refused, so there is no "forever": a slow sender would hold its
	// connection, and -max-conns of them would lock everyone out.
	dataTimeout     time.Duration // -data-timeout
	messageTimeout  time.Duration // -message-timeout
	deliveryTimeout time.Duration // -delivery-timeout

	// shutdownTimeout is how long a graceful stop waits for sessions
	// before closing them; 0 waits for them all. The library has no such
	// field (Shutdown takes a context), so its default is the program's.
	shutdownTimeout time.Duration // -shutdown-timeout

	greetDelay     time.Duration // -greet-delay: listen this long before the greeting
	pipeliningSync bool          // -pipelining-sync: refuse clients that do not wait for replies

	denyHosts      hostList    // -deny-hosts
	allowHosts     hostList    // -allow-hosts
	denySenders    patternList // -deny-senders
	denyRecipients patternList // -deny-recipients
	acceptDomains  patternList // -accept-domains

	record string // -record: write each session as a transcript into this directory

	// The web inbox: where it listens ("" for none), how many messages
	// it keeps when the store cannot be read back, who may look.
	http     string // -http
	httpKeep int    // -http-keep
	httpAuth string // -http-auth

	logFormat string // -log: "text" or "json"
	verbose   bool   // -v
	quiet     bool   // -quiet

	procs int // -procs: runtime.GOMAXPROCS; 0 leaves the runtime's choice
}

// The program's own defaults; the limits' are the library's
// (smtpd.DefaultMaxMessageBytes and so on).
const (
	defaultAddr     = "127.0.0.1:2525"
	defaultHTTPKeep = 1000

	// A stop should not hang on clients, yet a message being received
	// deserves time to finish; systemd waits 90 s (TimeoutStopSec) before
	// it kills a service, so this leaves room to spare.
	defaultShutdownTimeout = 30 * time.Second
)

// defaultProcs is -procs's default: 1, unless the GOMAXPROCS environment
// variable is set, which the Go runtime has applied already (0: leave it).
//
// A sink's work per message is system calls, not computation. When Go
// code may run on several threads, nearly every command wakes a second
// thread to look for work and puts it back to sleep, and those switches
// are the largest cost of a small message after the kernel's own. On a
// 2-core machine with Postfix's smtp-source beside the sink, one thread
// spent 0.69 to 0.80 of the CPU per 1 KiB message with 10 or 100
// sessions, and delivered more messages per second. With a single
// session it spent the same, and one message per connection was up to
// 17% slower. A workstation sink also leaves the other cores to the code
// under test. Blocking system calls (fsync, -exec's child) still run in
// parallel: the runtime gives the thread's place to another while one
// blocks. Many TLS handshakes at once are computation: -procs 0 for them.
func defaultProcs() int {
	if os.Getenv("GOMAXPROCS") != "" {
		return 0
	}
	return 1
}

// errHelp is parseConfig's answer to -help: print the usage, exit 0.
var errHelp = flag.ErrHelp

// parseConfig parses and checks the command line. On -help it writes the
// usage to stdout and returns errHelp; any other error is one line naming
// the problem, for the caller to print before exiting with status 2.
func parseConfig(args []string, stdout io.Writer) (*config, error) {
	cfg := &config{}
	fs := newFlagSet(cfg)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage(stdout, fs)
			return nil, errHelp
		}
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q (all settings are flags; see -help)", fs.Arg(0))
	}
	if err := cfg.check(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// newFlagSet defines the flags, each setting its field of cfg.
func newFlagSet(cfg *config) *flag.FlagSet {
	fs := flag.NewFlagSet("smtpd", flag.ContinueOnError)
	// The flag package would print the error and then the whole usage;
	// one line that names the problem is easier to spot, so it is silenced
	// and the caller prints the error.
	fs.SetOutput(io.Discard)

	fs.StringVar(&cfg.addr, "addr", defaultAddr, "listen on `host:port` for SMTP; port 0 picks a free port")
	fs.StringVar(&cfg.hostname, "hostname", smtpd.DefaultHostname(), "`name` in the greeting, the EHLO reply and the Received field")
	fs.StringVar(&cfg.banner, "banner", "smtpd", "greeting `text` after \"220 <hostname> ESMTP\"")
	fs.BoolVar(&cfg.lmtp, "lmtp", false, "speak LMTP (RFC 2033) instead of SMTP: LHLO, and one reply per recipient after the message")

	fs.StringVar(&cfg.tlsCert, "tls-cert", "", "offer STARTTLS with the certificate chain in the PEM `file` (needs -tls-key)")
	fs.StringVar(&cfg.tlsKey, "tls-key", "", "the private key of -tls-cert, a PEM `file`")
	fs.BoolVar(&cfg.tlsSelfSigned, "tls-self-signed", false, "offer STARTTLS with a certificate for -hostname, 127.0.0.1 and ::1 made up at start (for development: clients cannot verify it)")
	fs.StringVar(&cfg.tlsAddr, "tls-addr", "", "also listen on `host:port` with implicit TLS (RFC 8314, port 465 in production); needs a certificate")

	fs.StringVar(&cfg.authFile, "auth-file", "", "offer AUTH PLAIN and LOGIN (after TLS) to the users in `file`, one user:password a line")
	fs.BoolVar(&cfg.authInsecure, "auth-insecure", false, "offer AUTH without TLS too, where passwords cross the network in the clear (needs -auth-file)")
	fs.BoolVar(&cfg.authRequired, "auth-required", false, "refuse mail from clients that have not authenticated (needs -auth-file)")

	fs.BoolVar(&cfg.proxyProtocol, "proxy-protocol", false, "clients from -proxy-trusted begin with a PROXY protocol header (HAProxy v1 or v2) that carries the real client's address")
	fs.Var(&cfg.proxyTrusted, "proxy-trusted", "the comma-separated `list` of IPs and CIDRs of the proxies that send PROXY headers (needs -proxy-protocol)")

	fs.StringVar(&cfg.maildir, "maildir", "", "store each message in the Maildir `dir`, created if missing")
	fs.StringVar(&cfg.mbox, "mbox", "", "append each message to the mbox `file` (mboxrd, locked with flock)")
	fs.StringVar(&cfg.execCmd, "exec", "", "pipe each message to sh -c `command`; its exit status decides: 0 accepts, 75 or death by a signal is a temporary failure, others refuse")
	fs.BoolVar(&cfg.discard, "discard", false, "accept and drop every message, as fast as possible (load tests); logs only errors unless -v")

	fs.Int64Var(&cfg.maxSize, "max-size", smtpd.DefaultMaxMessageBytes, "largest message accepted, in `bytes`; 0 means no limit")
	fs.IntVar(&cfg.maxRecipients, "max-recipients", smtpd.DefaultMaxRecipients, "most recipients of one message; 0 means no limit")
	fs.IntVar(&cfg.maxConns, "max-conns", smtpd.DefaultMaxConnections, "most concurrent connections; 0 means no limit")
	fs.IntVar(&cfg.maxConnsPerIP, "max-conns-per-ip", 0, fmt.Sprintf("most concurrent connections from one client IP address (with -proxy-protocol, the address the header carries); 0 means the library's default (%d, never more than half of -max-conns, loopback clients spared); a negative value means no limit", smtpd.DefaultMaxConnectionsPerIP))
	fs.DurationVar(&cfg.timeout, "timeout", smtpd.DefaultCommandTimeout, "how long to wait for a command line; 0 means forever")
	fs.DurationVar(&cfg.dataTimeout, "data-timeout", 0, "how long to wait for each block of message data; 0 means the library's default (smtpd.Server.DataTimeout)")
	fs.DurationVar(&cfg.messageTimeout, "message-timeout", 0, "how long the whole message may take to arrive, so that a client that trickles it is cut off; 0 means the library's default (smtpd.Server.MessageTimeout)")
	fs.DurationVar(&cfg.deliveryTimeout, "delivery-timeout", 0, "how long storing a message may take (-exec: then the command is killed); 0 means the library's default (smtpd.Server.DeliveryTimeout)")
	fs.DurationVar(&cfg.shutdownTimeout, "shutdown-timeout", defaultShutdownTimeout, "after SIGINT or SIGTERM, how long sessions may take to finish their message; then the rest get 421 and are closed; 0 means wait for them all")
	fs.DurationVar(&cfg.greetDelay, "greet-delay", 0, "listen this long before the greeting and cut off clients that talk in it (554), as Postfix's postscreen does; 0 greets at once")
	fs.BoolVar(&cfg.pipeliningSync, "pipelining-sync", true, "cut off clients (554) that send commands before replies they must wait for (RFC 2920 3.1, RFC 5321 4.3.1), which stops transaction stuffing; -pipelining-sync=false lets them")

	fs.Var(&cfg.denyHosts, "deny-hosts", "refuse clients from this comma-separated `list` of IPs and CIDRs, at connect")
	fs.Var(&cfg.allowHosts, "allow-hosts", "accept clients only from this comma-separated `list` of IPs and CIDRs")
	fs.Var(&cfg.denySenders, "deny-senders", "refuse these senders at MAIL: comma-separated `patterns` with * and ?, case-insensitive; <> is the null sender")
	fs.Var(&cfg.denyRecipients, "deny-recipients", "refuse these recipients at RCPT: comma-separated `patterns` with * and ?, case-insensitive")
	fs.Var(&cfg.acceptDomains, "accept-domains", "accept mail from unauthenticated clients only for these comma-separated `domains` (patterns with * and ?); others get 550 relay denied")

	fs.StringVar(&cfg.record, "record", "", "write each session into `dir` (created if missing) as a conformance transcript, AUTH passwords masked; see conformance/testdata/README.md")
	fs.StringVar(&cfg.http, "http", "", "serve a web inbox on `host:port` (e.g. 127.0.0.1:8025): the messages, their parts and the SMTP session of each, and mailpit's JSON API; a non-loopback address needs -http-auth")
	fs.IntVar(&cfg.httpKeep, "http-keep", defaultHTTPKeep, "with -http, how many of the latest messages the inbox keeps in memory when the store cannot be read back (standard output, -exec, -discard); a Maildir or mbox is read back whole")
	fs.StringVar(&cfg.httpAuth, "http-auth", "", "with -http, require HTTP Basic authentication by the users in `file`, one user:password a line as in -auth-file")
	fs.IntVar(&cfg.procs, "procs", defaultProcs(), "run Go code on at most `n` threads at once (GOMAXPROCS): 1 costs a sink the least CPU per message; 0 leaves it to the Go runtime (the GOMAXPROCS environment variable, else every CPU), for many TLS handshakes at once")
	fs.StringVar(&cfg.logFormat, "log", "text", "log `format` on standard error: text or json")
	fs.BoolVar(&cfg.verbose, "v", false, "log every command line and reply (never message content or AUTH secrets), not only sessions and messages")
	fs.BoolVar(&cfg.quiet, "quiet", false, "log only errors (for load tests)")
	return fs
}

// check rejects settings that cannot work, before anything listens. Files
// and directories are checked when the store opens them (openStore).
func (cfg *config) check() error {
	if _, _, err := net.SplitHostPort(cfg.addr); err != nil {
		return fmt.Errorf("-addr %q: want host:port", cfg.addr)
	}
	if !smtpd.ValidHostname(cfg.hostname) {
		return fmt.Errorf("-hostname %q: not a domain name", cfg.hostname)
	}
	var modes []string
	for _, m := range []struct {
		name string
		set  bool
	}{{"-maildir", cfg.maildir != ""}, {"-mbox", cfg.mbox != ""}, {"-exec", cfg.execCmd != ""}, {"-discard", cfg.discard}} {
		if m.set {
			modes = append(modes, m.name)
		}
	}
	if len(modes) > 1 {
		return fmt.Errorf("%s: choose one place to put messages", strings.Join(modes, " and "))
	}
	if err := cfg.checkSecurity(); err != nil {
		return err
	}
	if cfg.execCmd != "" {
		if _, err := exec.LookPath("sh"); err != nil {
			return fmt.Errorf("-exec: no sh to run the command: %v", err)
		}
	}

	// The flags say "0 means no limit", as Postfix's limits do; the
	// library says that with a negative value, and 0 means its default.
	for _, l := range []struct {
		name string
		v    int64
	}{{"-max-size", cfg.maxSize}, {"-max-recipients", int64(cfg.maxRecipients)}, {"-max-conns", int64(cfg.maxConns)}, {"-timeout", int64(cfg.timeout)}, {"-procs", int64(cfg.procs)}} {
		if l.v < 0 {
			return fmt.Errorf("%s: must not be negative", l.name)
		}
	}
	cfg.maxSize = noLimit(cfg.maxSize)
	cfg.maxRecipients = noLimit(cfg.maxRecipients)
	cfg.maxConns = noLimit(cfg.maxConns)
	cfg.timeout = noLimit(cfg.timeout)
	for _, l := range []struct {
		name string
		v    time.Duration
	}{{"-data-timeout", cfg.dataTimeout}, {"-message-timeout", cfg.messageTimeout}, {"-delivery-timeout", cfg.deliveryTimeout}, {"-shutdown-timeout", cfg.shutdownTimeout}, {"-greet-delay", cfg.greetDelay}} {
		if l.v < 0 {
			return fmt.Errorf("%s: must not be negative", l.name)
		}
	}

	if err := cfg.checkHTTP(); err != nil {
		return err
	}

	switch cfg.logFormat {
	case "text", "json":
	default:
		return fmt.Errorf("-log %q: want text or json", cfg.logFormat)
	}
	if cfg.verbose && cfg.quiet {
		return errors.New("-v and -quiet: choose one")
	}
	return nil
}

// checkSecurity checks the TLS, AUTH and PROXY flags, which only work in
// certain combinations. The files they name are read later, by loadTLS and
// loadPasswords.
func (cfg *config) checkSecurity() error {
	switch {
	case (cfg.tlsCert == "") != (cfg.tlsKey == ""):
		return errors.New("-tls-cert and -tls-key: give both, the certificate and its key")
	case cfg.tlsSelfSigned && cfg.tlsCert != "":
		return errors.New("-tls-self-signed and -tls-cert: choose one certificate")
	}
	if cfg.tlsAddr != "" {
		if _, _, err := net.SplitHostPort(cfg.tlsAddr); err != nil {
			return fmt.Errorf("-tls-addr %q: want host:port", cfg.tlsAddr)
		}
		if cfg.tlsCert == "" && !cfg.tlsSelfSigned {
			return errors.New("-tls-addr: needs a certificate: -tls-cert and -tls-key, or -tls-self-signed")
		}
	}
	if cfg.authFile == "" {
		switch {
		case cfg.authRequired:
			return errors.New("-auth-required: needs -auth-file, the users who may authenticate")
		case cfg.authInsecure:
			return errors.New("-auth-insecure: needs -auth-file, the users who may authenticate")
		}
	}
	// The library trusts a PROXY header only from listed networks: a
	// header from anyone else would let any client claim any address.
	switch {
	case cfg.proxyProtocol && len(cfg.proxyTrusted) == 0:
		return errors.New("-proxy-protocol: needs -proxy-trusted, the proxies whose headers to believe")
	case !cfg.proxyProtocol && len(cfg.proxyTrusted) > 0:
		return errors.New("-proxy-trusted: needs -proxy-protocol")
	}
	return nil
}

// checkHTTP checks the web inbox's flags. The inbox shows all the mail,
// so binding it where others can reach it needs -http-auth.
func (cfg *config) checkHTTP() error {
	if cfg.http == "" {
		switch {
		case cfg.httpAuth != "":
			return errors.New("-http-auth: needs -http, the address of the web inbox")
		case cfg.httpKeep != defaultHTTPKeep:
			return errors.New("-http-keep: needs -http, the address of the web inbox")
		}
		return nil
	}
	host, _, err := net.SplitHostPort(cfg.http)
	if err != nil {
		return fmt.Errorf("-http %q: want host:port", cfg.http)
	}
	if cfg.httpKeep < 1 {
		return fmt.Errorf("-http-keep %d: keep at least one message", cfg.httpKeep)
	}
	if !isLoopback(host) && cfg.httpAuth == "" {
		return fmt.Errorf("-http %s: not a loopback address, so anyone who reaches it could read the mail: give -http-auth FILE (user:password lines, as -auth-file), or listen on 127.0.0.1", cfg.http)
	}
	return nil
}

// isLoopback reports whether host names this machine's loopback only:
// "localhost", or a loopback IP address. "" (every address) does not.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func noLimit[T int | int64 | time.Duration](v T) T {
	if v == 0 {
		return -1
	}
	return v
}

// printUsage prints every flag with its default. flag.PrintDefaults leaves
// out defaults that are zero values; here each flag shows one, so that
// -help answers "what happens if I leave this out" for all of them.
func printUsage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprint(w, `Usage: smtpd [flags]

smtpd receives mail over SMTP and, instead of delivering it, stores it in a
Maildir (-maildir) or an mbox (-mbox), pipes it to a command (-exec), drops
it (-discard), or prints it on standard output (the default).

Flags:
`)
	fs.VisitAll(func(f *flag.Flag) {
		name, usage := flag.UnquoteUsage(f)
		line := "  -" + f.Name
		if name != "" {
			line += " " + name
		}
		def := f.DefValue
		switch {
		case def == "":
			def = "none"
		case isStringFlag(f):
			def = fmt.Sprintf("%q", def)
		}
		fmt.Fprintf(w, "%s\n    \t%s (default %s)\n", line, usage, def)
	})
}

// isStringFlag reports whether f holds free text, whose default is quoted
// in the usage as flag.PrintDefaults does.
func isStringFlag(f *flag.Flag) bool {
	g, ok := f.Value.(flag.Getter)
	if !ok {
		return false
	}
	_, ok = g.Get().(string)
	return ok
}
