package conformance

import (
	"regexp"
	"strings"
	"testing"

	"smtpd/internal/transcript"
)

// TestTranscripts replays every transcript against the in-process server.
// A failure names the transcript's file and line, what it wanted and what
// came.
func TestTranscripts(t *testing.T) {
	suite, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	if len(suite) == 0 {
		t.Fatal("no transcripts in testdata")
	}
	for _, tr := range suite {
		t.Run(tr.Name, func(t *testing.T) {
			t.Parallel()
			if err := RunLocal(tr); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestSkip: what a remote target can and cannot be held to; an unknown
// key does not even parse, so no case passes by being ignored.
func TestSkip(t *testing.T) {
	parse := func(src string) *transcript.Transcript {
		t.Helper()
		tr, err := transcript.Parse("x.txt", []byte("# c.\nref: r\n"+src))
		if err != nil {
			t.Fatal(err)
		}
		return tr
	}
	plain := Target{Ext: Extensions{"PIPELINING": ""}, Rcpt: "bob@example.net"}
	withTLS := Target{Ext: Extensions{"STARTTLS": ""}, TLSExt: Extensions{"AUTH": "LOGIN PLAIN"}, Auth: "jane:secret"}
	noAccount := withTLS
	noAccount.Auth = ""
	badCert := withTLS
	badCert.TLSFailed = "STARTTLS probe failed: x509: unknown authority"
	all := Target{Ext: Extensions{"PIPELINING": ""}, Strict: true, Sink: true, Deliver: true, Rcpt2: true, Refused: true}
	const message = "S: 220\nC: DATA\nS: 354\nC: ${mark}x\nC: .\nS: 250\n"
	for _, tc := range []struct {
		src    string
		target Target
		skip   string // "" to run
	}{
		{"S: 220\n", plain, ""},
		{"max-recipients: 2\nS: 220\n", plain, "configuration"},
		{"tls: starttls\nS: 220\n", plain, "STARTTLS"},
		{"tls: starttls\nS: 220\n", withTLS, ""},
		{"tls: starttls\nS: 220\nstarttls\n", badCert, "x509"},
		{"tls: implicit\nS: 220\n", withTLS, "-tls-addr"},
		{"tls: implicit\nS: 220\n", Target{ImplicitTLS: true}, ""},
		{"tls: implicit\nneeds: AUTH\nS: 220\n", Target{ImplicitTLS: true, ImplicitExt: Extensions{"AUTH": "PLAIN"}}, ""},
		{"tls: implicit\nneeds: AUTH\nS: 220\n", Target{ImplicitTLS: true, Ext: Extensions{"AUTH": "PLAIN"}}, "AUTH"},
		{"auth: jane:secret\nneeds: AUTH=PLAIN\nS: 220\nstarttls\nC: AUTH PLAIN ${plain}\n", withTLS, ""},
		{"auth: jane:secret\nneeds: AUTH=PLAIN\nS: 220\nstarttls\nC: AUTH PLAIN ${plain}\n", noAccount, "-auth"},
		{"auth: jane:secret\nS: 220\nstarttls\nC: AUTH FROB\n", noAccount, ""},
		{"auth: jane:secret\nS: 220\nC: AUTH FROB\n", noAccount, "AUTH"},
		{"auth: jane:secret\nneeds: AUTH=PLAIN\nS: 220\n", withTLS, "offer AUTH"},
		{"auth: jane:secret\nneeds: AUTH=CRAM-MD5\nS: 220\nstarttls\n", withTLS, "AUTH=CRAM-MD5"},
		{"auth: alice:********\nS: 220\nstarttls\n", withTLS, "masked"},
		{"auth: jane:secret\nauth-insecure: yes\nS: 220\n", withTLS, "configuration"},
		{"lmtp: yes\nS: 220\n", plain, "-lmtp"},
		{"lmtp: yes\nS: 220\n", Target{LMTP: true}, ""},
		{"S: 220\n", Target{LMTP: true}, "LMTP"},
		{"S: 220\nshutdown\n", plain, "in-process"},
		{"level: policy\nprofile: strict\nS: 220\n", plain, "-profile strict"},
		{"level: policy\nprofile: strict\nS: 220\n", all, ""},
		{"sink: yes\nS: 220\n", plain, "-sink"},
		{"sink: yes\nS: 220\n", all, ""},
		{"S: 220\nC: RCPT TO:<${rcpt2}>\n", plain, "second -rcpt"},
		{"S: 220\nC: RCPT TO:<${refused}>\n", plain, "-rcpt-refused"},
		{"S: 220\nC: RCPT TO:<${refused}>\n", all, ""},
		{message, plain, "needs -deliver (delivers 0 messages to bob@example.net)"},
		{message + "== delivery\nmail: <>\nD: ${mark}x\n", plain, "delivers 1 messages"},
		{message, all, ""},
		{"S: 220\nC: DATA\nS: 354\nC! \"${mark}x\\n.\\n\"\n", plain, "-deliver"},
		{"S: 220\nC: DATA\nS: 503\nC: QUIT\n", plain, ""},
		{"S: 220\nC! \"BDAT ${mark+1} LAST\\r\\n${mark}x\"\n", plain, "-deliver"},
	} {
		why := Skip(parse(tc.src), tc.target)
		if tc.skip == "" && why != "" || tc.skip != "" && !strings.Contains(why, tc.skip) {
			t.Errorf("%q: Skip = %q, want %q", tc.src, why, tc.skip)
		}
	}
	if _, err := transcript.Parse("x.txt", []byte("# c.\nref: r\nmax-frobs: 1\n\nS: 220\n")); err == nil {
		t.Error("an unknown header key parsed")
	}
}

// TestCaseHeaders holds every case to what smtpconform needs to run it
// safely against somebody's server: a requirement level; each message
// marked; and, outside the sink cases, only the administrator's addresses
// in the envelope of a delivered message.
func TestCaseHeaders(t *testing.T) {
	suite, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	placeholder := regexp.MustCompile(`^<(?:\$\{(?:from|rcpt|rcpt2)\})?>`)
	for _, tr := range suite {
		if Level(tr) == "" {
			t.Errorf("%s: no level: line (MUST, SHOULD or policy)", tr.Name)
		}
		if Strict(tr) && Level(tr) != "policy" {
			t.Errorf("%s: a strict-profile case checks a choice, so its level is policy, not %s", tr.Name, Level(tr))
		}
		src, err := Source(tr.Name)
		if err != nil {
			t.Fatal(err)
		}
		sections := strings.Split(string(src), "\n== delivery\n")[1:]
		if MayDeliver(tr) && !strings.Contains(string(src), "${mark}") {
			t.Errorf("%s: the case may complete a message but sends no ${mark}", tr.Name)
		}
		_, sink := tr.Get("sink")
		for i, sec := range sections {
			for _, l := range strings.Split(sec, "\n") {
				// The Received field the server adds comes before the
				// message (D~ lines): the mark is on the first line the
				// client sent.
				if strings.HasPrefix(l, "D:") || strings.HasPrefix(l, "D!") {
					if !strings.Contains(l, "${mark}") && !strings.HasPrefix(tr.Name, "client_") {
						t.Errorf("%s: delivery %d does not start with ${mark}", tr.Name, i+1)
					}
					break
				}
				path, isPath := strings.CutPrefix(l, "mail: ")
				if !isPath {
					path, isPath = strings.CutPrefix(l, "rcpt: ")
				}
				if isPath && !sink && !placeholder.MatchString(path) {
					t.Errorf("%s: delivery %d: %q is not a placeholder; use ${from}, ${rcpt}, ${rcpt2}, or say sink: yes", tr.Name, i+1, l)
				}
			}
		}
	}
}
