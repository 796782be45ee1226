// Command smtpconform replays the conformance suite (the transcripts in
// conformance/testdata, built into the binary) against any SMTP server, and
// records real clients' sessions as new transcripts.
//
//	smtpconform -addr host:port -rcpt you@your.domain [-mail-from addr] [-rcpt second@your.domain]
//	            [-rcpt-refused nobody@your.domain] [-deliver] [-sink] [-profile strict]
//	            [-tls-insecure] [-auth user:password] [-tls-addr host:port] [-lmtp]
//	            [-run regexp] [-parallel N] [-timeout d] [-case-timeout d]
//	            [-report text|md|json] [-json] [-v]
//	smtpconform -show NAME
//	smtpconform -record -listen host:port -upstream host:port -out dir
//
// It is meant to be aimed at a server somebody cares about, so it is safe
// by default:
//
//   - It sends only to the addresses it is given. The transcripts'
//     envelope addresses are placeholders, filled from -mail-from, -rcpt
//     (the first is the main recipient, a second is used by the cases that
//     need two) and -rcpt-refused (an address the target refuses; the
//     cases that need one are skipped without it). -mail-from defaults to
//     the first -rcpt. Against a server that is not on a loopback address
//     it refuses to start without -rcpt; on loopback the suite's own
//     addresses (alice@example.org to bob@example.net) are the default.
//   - It completes no message unless -deliver is given: every case that
//     could end DATA or BDAT LAST with a delivery is skipped ("needs
//     -deliver"). A -deliver run first prints how many messages it will
//     deliver, and every message it sends carries an "X-Smtpconform: CASE;
//     run=RUN" header field and, where the message has a Subject, the
//     prefix "[smtpconform] ", so that they can be filtered.
//   - Cases that need a server accepting any address (an open relay or a
//     sink) run only with -sink. Cases of the strict profile, which check
//     this project's stricter choices where the RFC lets a server choose,
//     run only with -profile strict.
//   - Each session ends with QUIT, after a failure too.
//
// Replay first reads the target's EHLO reply. A case that needs an
// extension the target does not offer, or a server configuration that
// cannot be set from outside (a small limit, a callback that refuses a
// given sender, a short timeout), is skipped with the reason. When the
// target offers STARTTLS, the probe also starts TLS and reads the EHLO
// reply inside, so that the cases that start TLS can ask for what is
// offered there only (AUTH, usually); when that handshake fails (a
// certificate the system does not trust), the TLS cases are skipped with
// the reason: -tls-insecure skips verification. The AUTH cases that need
// a valid account use the one -auth gives; the others (a wrong password,
// an unknown mechanism) run whenever AUTH is offered. The implicit-TLS
// cases (RFC 8314) need -tls-addr, the target's port for them; the LMTP
// cases need -lmtp, which also skips every SMTP case.
//
// Each case carries its requirement level: MUST (a violation of an RFC's
// MUST), SHOULD, or policy (the RFC leaves the answer to the server). The
// report counts and lists failures by level, and for each failure gives
// the case, its RFC section, what was sent, what was wanted and what came
// back. -report md writes it as Markdown for an issue tracker; -report
// json (or -json) as one JSON document, whose fields are documented on
// the report type in report.go. The exit status is 1 when a case failed,
// 2 for bad flags or a target that cannot be probed.
//
// Cases run -parallel at a time (default 8), each on its own connection
// and bounded by -case-timeout, so that a server with greeting delays or
// error tarpits is checked in minutes.
//
// Record is a proxy: clients connect to -listen, the proxy relays to
// -upstream, and each session is written to -out as a transcript (see
// conformance/testdata/README.md, "Recording a new client").
package main

import (
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"strings"
	"time"

	"smtpd/conformance"
	"smtpd/internal/transcript"
)

// addrList is a repeatable address flag.
type addrList []string

func (a *addrList) String() string { return strings.Join(*a, ",") }
func (a *addrList) Set(v string) error {
	if err := transcript.CheckAddress(v); err != nil {
		return err
	}
	*a = append(*a, v)
	return nil
}

func main() {
	var rcpts addrList
	addr := flag.String("addr", "", "target server `host:port`")
	mailFrom := flag.String("mail-from", "", "the reverse-path `address` of every MAIL (default: the first -rcpt)")
	flag.Var(&rcpts, "rcpt", "an `address` the target accepts; give it twice for the cases that need two recipients")
	refused := flag.String("rcpt-refused", "", "an `address` the target refuses, for the cases that need one")
	deliver := flag.Bool("deliver", false, "run the cases that complete a message (each marked with an X-Smtpconform field)")
	sink := flag.Bool("sink", false, "the target accepts any address (a sink): run the cases that need one")
	profile := flag.String("profile", "portable", "`portable`, or strict to add the cases of this project's stricter choices")
	run := flag.String("run", "", "replay only the cases whose name matches `regexp`")
	show := flag.String("show", "", "print the transcript of the case `NAME` and exit")
	tlsInsecure := flag.Bool("tls-insecure", false, "do not verify the target's certificate in TLS cases")
	auth := flag.String("auth", "", "an account the target accepts, `user:password`, for the AUTH cases")
	tlsAddr := flag.String("tls-addr", "", "the target's implicit-TLS port `host:port`, for the implicit-TLS cases")
	lmtp := flag.Bool("lmtp", false, "the target speaks LMTP: run the LMTP cases only")
	reportFmt := flag.String("report", "text", "report `format`: text, md or json")
	jsonOut := flag.Bool("json", false, "the same as -report json")
	verbose := flag.Bool("v", false, "list every case in the text report, not only failures")
	parallel := flag.Int("parallel", 8, "replay `N` cases at a time")
	timeout := flag.Duration("timeout", 10*time.Second, "how long to wait for each reply")
	caseTimeout := flag.Duration("case-timeout", time.Minute, "how long one case may take")
	record := flag.Bool("record", false, "run the recording proxy instead of replaying")
	listen := flag.String("listen", "127.0.0.1:2526", "with -record: listen on `host:port`")
	upstream := flag.String("upstream", "", "with -record: relay to the server at `host:port`")
	out := flag.String("out", ".", "with -record: write transcripts into `dir`")
	flag.Parse()
	if flag.NArg() > 0 {
		fatalf("unexpected argument %q", flag.Arg(0))
	}

	switch {
	case *show != "":
		if err := showCase(os.Stdout, *show); err != nil {
			fatalf("%v", err)
		}
		return
	case *record:
		if *upstream == "" {
			fatalf("-record needs -upstream")
		}
		if err := recordMain(*listen, *upstream, *out); err != nil {
			fatalf("%v", err)
		}
		return
	case *addr == "":
		fatalf("-addr is required (or -show, or -record)")
	case *profile != "portable" && *profile != "strict":
		fatalf("-profile: want portable or strict, got %q", *profile)
	case *jsonOut:
		*reportFmt = "json"
	}
	if *reportFmt != "text" && *reportFmt != "md" && *reportFmt != "json" {
		fatalf("-report: want text, md or json, got %q", *reportFmt)
	}
	if *parallel < 1 {
		fatalf("-parallel: want at least 1")
	}
	cfg := config{addr: *addr, tlsInsecure: *tlsInsecure, timeout: *timeout, caseTimeout: *caseTimeout,
		auth: *auth, tlsAddr: *tlsAddr, lmtp: *lmtp, deliver: *deliver, sink: *sink,
		strict: *profile == "strict", parallel: *parallel}
	if *run != "" {
		var err error
		if cfg.filter, err = regexp.Compile(*run); err != nil {
			fatalf("-run: %v", err)
		}
	}
	if *refused != "" {
		if err := transcript.CheckAddress(*refused); err != nil {
			fatalf("-rcpt-refused: %v", err)
		}
	}
	if *mailFrom != "" {
		if err := transcript.CheckAddress(*mailFrom); err != nil {
			fatalf("-mail-from: %v", err)
		}
	}
	if *auth != "" && !strings.Contains(*auth, ":") {
		fatalf("-auth: want user:password")
	}
	if len(rcpts) == 0 && !isLoopback(*addr) {
		fatalf("-rcpt is required against a server that is not on a loopback address: " +
			"the checker sends only to addresses you name (-rcpt, -mail-from, -rcpt-refused)")
	}
	cfg.vars = addresses(rcpts, *mailFrom, *refused, *auth)
	if err := runReplay(cfg, *reportFmt, *verbose); err != nil {
		fatalf("%v", err)
	}
}

// addresses fills the placeholders from the flags; what was not given
// keeps the suite's own values, which only a loopback target gets (main
// refuses to start otherwise). The run ID names the run in each message's
// X-Smtpconform field.
func addresses(rcpts []string, from, refused, auth string) transcript.Vars {
	v := transcript.DefaultVars
	v.Refused = ""
	if len(rcpts) > 0 {
		v.Rcpt, v.From, v.Rcpt2 = rcpts[0], rcpts[0], ""
	}
	if len(rcpts) > 1 {
		v.Rcpt2 = rcpts[1]
	}
	if from != "" {
		v.From = from
	}
	if refused != "" {
		v.Refused = refused
	}
	if user, pass, ok := strings.Cut(auth, ":"); ok {
		v.User, v.Password = user, pass
	}
	var id [3]byte
	rand.Read(id[:])
	v.Run = time.Now().UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(id[:])
	return v
}

// isLoopback reports whether host:port names a loopback address, the
// only kind of target the checker will send the suite's own addresses to.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// showCase prints the named case as written, then what its placeholders
// stand for.
func showCase(w io.Writer, name string) error {
	src, err := conformance.Source(name)
	if err != nil {
		return fmt.Errorf("no case %q (see -run with -v for the names)", name)
	}
	w.Write(src)
	fmt.Fprintf(w, "\n# ${from}, ${rcpt}, ${rcpt2}, ${refused}: -mail-from, -rcpt (first, second), -rcpt-refused;\n"+
		"# ${mark}: an X-Smtpconform header field naming the case and the run; ${tag}: \"[smtpconform] \".\n")
	return nil
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "smtpconform: "+format+"\n", args...)
	os.Exit(2)
}
