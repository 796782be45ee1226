package main

// Recorded client transcripts (conformance/testdata/client_*.txt), in the
// manner of crypto/tls's recorded flows: each real client runs against
// the built program with -record, and the transcript it writes must
// replay in the conformance runner. "go test ./cmd/smtpd -run
// TestRecordClients -update" also rewrites the checked-in files from
// these recordings, with a first line naming the client, its version and
// its command line.

import (
	"crypto/tls"
	"flag"
	"fmt"
	"net"
	"net/smtp"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "TestRecordClients: rewrite conformance/testdata/client_*.txt from new recordings")

// recordedClient is one client session to record.
type recordedClient struct {
	name string // the file is client_<name>.txt
	what string // what the session does, for the first line
	ref  string
	// tls: the server offers STARTTLS; auth: and AUTH after it, to
	// alice:secret.
	tls, auth bool
	// programs the client needs; version prints its version.
	programs []string
	version  func(t *testing.T) string
	// run runs the client against addr and returns its command line,
	// PORT standing for the port.
	run func(t *testing.T, addr string) string
}

// msgFile is the message curl uploads (msg.txt), with CRLF line ends as
// SMTP wants.
const msgFile = "From: alice@example.org\r\nTo: bob@example.net\r\nSubject: curl\r\n\r\nHello from curl.\r\n.a line starting with a dot\r\n"

func recordedClients(dir string) []recordedClient {
	pyVersion := func(t *testing.T) string {
		return "Python " + versionOf(t, "python3", "--version", "Python ") + " smtplib"
	}
	swaksVersion := func(t *testing.T) string { return "swaks " + versionOf(t, "swaks", "--version", "swaks version ") }
	curlVersion := func(t *testing.T) string { return "curl " + versionOf(t, "curl", "--version", "curl ") }
	goVersion := func(*testing.T) string { return "Go " + runtime.Version() + " net/smtp" }
	py := func(script string) func(t *testing.T, addr string) string {
		return func(t *testing.T, addr string) string {
			_, port, _ := net.SplitHostPort(addr)
			runClient(t, false, "python3", "-c", strings.ReplaceAll(script, "PORT", port))
			return "python3 -c \"" + script + "\""
		}
	}
	cmd := func(name string, args ...string) func(t *testing.T, addr string) string {
		return func(t *testing.T, addr string) string {
			_, port, _ := net.SplitHostPort(addr)
			var real []string
			for _, a := range args {
				real = append(real, strings.ReplaceAll(a, "PORT", port))
			}
			runClient(t, false, name, real...)
			// The message file's place is the test's temporary directory.
			return strings.ReplaceAll(name+" "+strings.Join(args, " "), dir+string(filepath.Separator), "")
		}
	}
	msg := filepath.Join(dir, "msg.txt")
	os.WriteFile(msg, []byte(msgFile), 0o644)
	const pySend = "s.sendmail('alice@example.org', ['bob@example.net', 'carol@example.net'], 'From: alice@example.org\\r\\nSubject: smtplib\\r\\n\\r\\nHello from smtplib.\\r\\n.a line starting with a dot\\r\\n'); s.quit()"
	return []recordedClient{{
		name: "python_smtplib_sendmail", what: "sendmail to two recipients in the clear",
		ref: "RFC 5321 3.3", programs: []string{"python3"}, version: pyVersion,
		run: py("import smtplib; s = smtplib.SMTP('127.0.0.1', PORT, local_hostname='client.example'); " + pySend),
	}, {
		name: "python_smtplib_starttls_login", what: "STARTTLS, login (AUTH PLAIN), sendmail to two recipients",
		ref: "RFC 3207, RFC 4954, RFC 4616", tls: true, auth: true, programs: []string{"python3"}, version: pyVersion,
		run: py("import smtplib, ssl; s = smtplib.SMTP('127.0.0.1', PORT, local_hostname='client.example'); s.starttls(context=ssl._create_unverified_context()); s.login('alice', 'secret'); " + pySend),
	}, {
		name: "swaks_pipeline", what: "a message with PIPELINING",
		ref: "RFC 2920", programs: []string{"swaks"}, version: swaksVersion,
		run: cmd("swaks", "--server", "127.0.0.1:PORT", "--helo", "client.example", "--from", "alice@example.org", "--to", "bob@example.net", "--pipeline"),
	}, {
		name: "swaks_tls", what: "a message after STARTTLS",
		ref: "RFC 3207", tls: true, programs: []string{"swaks"}, version: swaksVersion,
		run: cmd("swaks", "--server", "127.0.0.1:PORT", "--helo", "client.example", "--from", "alice@example.org", "--to", "bob@example.net", "--tls"),
	}, {
		name: "swaks_auth_login_tls", what: "AUTH LOGIN after STARTTLS, then a message",
		ref: "RFC 4954, RFC 3207", tls: true, auth: true, programs: []string{"swaks"}, version: swaksVersion,
		run: cmd("swaks", "--server", "127.0.0.1:PORT", "--helo", "client.example", "--from", "alice@example.org", "--to", "bob@example.net", "--tls", "--auth", "LOGIN", "--auth-user", "alice", "--auth-password", "secret"),
	}, {
		name: "curl_upload", what: "a message uploaded from a file",
		ref: "RFC 5321 3.3", programs: []string{"curl"}, version: curlVersion,
		run: cmd("curl", "-sS", "smtp://127.0.0.1:PORT/client.example", "--mail-from", "alice@example.org", "--mail-rcpt", "bob@example.net", "--upload-file", msg),
	}, {
		name: "curl_ssl_reqd_user", what: "STARTTLS required, AUTH with --user, a message uploaded from a file",
		ref: "RFC 3207, RFC 4954", tls: true, auth: true, programs: []string{"curl"}, version: curlVersion,
		run: cmd("curl", "-sS", "--insecure", "--ssl-reqd", "--user", "alice:secret", "smtp://127.0.0.1:PORT/client.example", "--mail-from", "alice@example.org", "--mail-rcpt", "bob@example.net", "--upload-file", msg),
	}, {
		name: "go_net_smtp_sendmail", what: "SendMail to two recipients in the clear",
		ref: "RFC 5321 3.3", version: goVersion,
		run: func(t *testing.T, addr string) string {
			err := smtp.SendMail(addr, nil, "alice@example.org", []string{"bob@example.net", "carol@example.net"},
				[]byte("From: alice@example.org\r\nSubject: net/smtp\r\n\r\nHello from net/smtp.\r\n.a line starting with a dot\r\n"))
			if err != nil {
				t.Fatal(err)
			}
			return `smtp.SendMail("127.0.0.1:PORT", nil, from, to, msg) (cmd/smtpd/clients_test.go)`
		},
	}, {
		name: "go_net_smtp_starttls_plainauth", what: "StartTLS, Auth with PlainAuth, a message",
		ref: "RFC 3207, RFC 4954, RFC 4616", tls: true, auth: true, version: goVersion,
		run: func(t *testing.T, addr string) string {
			if err := goSMTPTLS(addr); err != nil {
				t.Fatal(err)
			}
			return "smtp.Dial, Hello, StartTLS, Auth(smtp.PlainAuth), Mail, Rcpt, Data, Quit (cmd/smtpd/clients_test.go)"
		},
	}, {
		name: "postfix_smtp_source", what: "one message from Postfix's test client",
		ref: "RFC 5321 3.3", programs: []string{"/usr/sbin/smtp-source"},
		version: func(t *testing.T) string {
			return "Postfix " + versionOf(t, "/usr/sbin/postconf", "-h mail_version", "") + " smtp-source"
		},
		// The suite's addresses, so that the recording runs against any
		// server (smtp-source's own are foo@ its host name).
		run: cmd("/usr/sbin/smtp-source", "-m", "1", "-c", "-f", "alice@example.org", "-t", "bob@example.net", "127.0.0.1:PORT"),
	}}
}

// goSMTPTLS sends a message with net/smtp's Client: STARTTLS (without
// verifying the self-signed certificate), then AUTH PLAIN.
func goSMTPTLS(addr string) error {
	c, err := smtp.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	steps := []func() error{
		func() error { return c.Hello("client.example") },
		func() error { return c.StartTLS(&tls.Config{InsecureSkipVerify: true}) },
		func() error { return c.Auth(smtp.PlainAuth("", "alice", "secret", "127.0.0.1")) },
		func() error { return c.Mail("alice@example.org") },
		func() error { return c.Rcpt("bob@example.net") },
		func() error {
			w, err := c.Data()
			if err != nil {
				return err
			}
			fmt.Fprint(w, "From: alice@example.org\r\nSubject: net/smtp over TLS\r\n\r\nHello.\r\n")
			return w.Close()
		},
		c.Quit,
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return err
		}
	}
	return nil
}

// versionOf runs a program with args (space separated) and returns the
// first word of its output after prefix.
func versionOf(t *testing.T, program, args, prefix string) string {
	t.Helper()
	out, err := exec.Command(program, strings.Fields(args)...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v", program, args, err)
	}
	_, v, _ := strings.Cut(string(out), prefix)
	return strings.Fields(v + " ?")[0]
}

// TestRecordClients records each client's session through -record and
// replays it; with -update it also writes it to conformance/testdata.
func TestRecordClients(t *testing.T) {
	for _, c := range recordedClients(t.TempDir()) {
		t.Run(c.name, func(t *testing.T) {
			need(t, c.programs...)
			dir := t.TempDir()
			args := []string{"-hostname", "mx.test", "-record", dir, "-discard"}
			if c.tls {
				args = append(args, "-tls-self-signed")
			}
			if c.auth {
				users := filepath.Join(t.TempDir(), "users")
				os.WriteFile(users, []byte("alice:secret\n"), 0o600)
				args = append(args, "-auth-file", users)
			}
			s := start(t, args...)
			line := c.run(t, s.addr)
			ts, raw := recordings(t, dir, 1)
			tr := ts[0]
			if strings.Contains(string(raw[0]), "secret") {
				t.Errorf("the recording holds the password:\n%s", raw[0])
			}
			if len(tr.Deliveries) == 0 {
				t.Errorf("the recording has no delivery:\n%s", raw[0])
			}
			replay(t, tr, raw[0])
			if !*update || t.Failed() {
				return
			}
			tr.Name = "client_" + c.name + ".txt"
			tr.Comment = fmt.Sprintf("%s, %s, recorded by cmd/smtpd -record: %s", c.version(t), c.what, line)
			tr.Ref = c.ref
			path := filepath.Join("..", "..", "conformance", "testdata", tr.Name)
			if err := writeTranscript(path, tr); err != nil {
				t.Fatal(err)
			}
			t.Logf("wrote %s", path)
		})
	}
}
