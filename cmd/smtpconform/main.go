// Command smtpconform replays the conformance suite (the transcripts in
// conformance/testdata, built into the binary) against any SMTP server, and
// records real clients' sessions as new transcripts.
//
//	smtpconform -addr host:port [-run regexp] [-tls-insecure] [-auth user:pass] [-tls-addr host:port] [-lmtp] [-json]
//	smtpconform -record -listen host:port -upstream host:port -out dir
//
// Replay first reads the target's EHLO reply. A case that needs an
// extension the target does not offer, or a server configuration that
// cannot be set from outside (a small limit, a callback that refuses a
// given sender, a short timeout), is skipped with the reason. Each case
// prints one line; the last line is "N passed, N failed, N skipped", and
// the exit status is 1 when any case failed. What the target's handler
// received cannot be seen from outside: a passing case that also describes
// a delivery says so, and only its replies were checked.
//
// When the target offers STARTTLS, the probe also starts TLS and reads the
// EHLO reply inside, so that the cases that start TLS can ask for what is
// offered there only (AUTH, usually). Certificates are verified against
// the system's roots and the target's host name unless -tls-insecure is
// given. The AUTH cases use the accounts their header names (jane:secret);
// they run only when -auth gives exactly those. The implicit-TLS cases
// (RFC 8314) need -tls-addr, the target's port for them; the LMTP cases
// need -lmtp, which also skips every SMTP case.
//
// Record is a proxy: clients connect to -listen, the proxy relays to
// -upstream, and each session is written to -out as a transcript (see
// conformance/testdata/README.md, "Recording a new client").
package main

import (
	"flag"
	"fmt"
	"os"
	"regexp"
	"time"
)

func main() {
	addr := flag.String("addr", "", "target server `host:port`")
	run := flag.String("run", "", "replay only the cases whose name matches `regexp`")
	tlsInsecure := flag.Bool("tls-insecure", false, "do not verify the target's certificate in TLS cases")
	auth := flag.String("auth", "", "the target accepts these accounts, `user:pass[,user:pass]`, for the AUTH cases")
	tlsAddr := flag.String("tls-addr", "", "the target's implicit-TLS port `host:port`, for the implicit-TLS cases")
	lmtp := flag.Bool("lmtp", false, "the target speaks LMTP: run the LMTP cases only")
	jsonOut := flag.Bool("json", false, "print the results as one JSON document")
	timeout := flag.Duration("timeout", 10*time.Second, "how long to wait for each reply")
	record := flag.Bool("record", false, "run the recording proxy instead of replaying")
	listen := flag.String("listen", "127.0.0.1:2526", "with -record: listen on `host:port`")
	upstream := flag.String("upstream", "", "with -record: relay to the server at `host:port`")
	out := flag.String("out", ".", "with -record: write transcripts into `dir`")
	flag.Parse()
	if flag.NArg() > 0 {
		fatalf("unexpected argument %q", flag.Arg(0))
	}

	if *record {
		if *upstream == "" {
			fatalf("-record needs -upstream")
		}
		if err := recordMain(*listen, *upstream, *out); err != nil {
			fatalf("%v", err)
		}
		return
	}
	if *addr == "" {
		fatalf("-addr is required (or -record)")
	}
	var filter *regexp.Regexp
	if *run != "" {
		var err error
		if filter, err = regexp.Compile(*run); err != nil {
			fatalf("-run: %v", err)
		}
	}
	cfg := config{addr: *addr, filter: filter, tlsInsecure: *tlsInsecure, timeout: *timeout,
		auth: *auth, tlsAddr: *tlsAddr, lmtp: *lmtp}
	rep, err := replayAll(cfg)
	if err != nil {
		fatalf("%v", err)
	}
	if *jsonOut {
		err = rep.writeJSON(os.Stdout)
	} else {
		err = rep.writeText(os.Stdout)
	}
	if err != nil {
		fatalf("%v", err)
	}
	if rep.Failed > 0 {
		os.Exit(1)
	}
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "smtpconform: "+format+"\n", args...)
	os.Exit(2)
}
