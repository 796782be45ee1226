package smtpd

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"smtpd/internal/selfsigned"
)

// End-to-end tests with the clients people really use, over loopback:
// Python's smtplib, swaks and curl (issue 3). Each test checks the client's
// exit status, the envelope and the exact message the handler received, and
// what the server knew of the session: TLS, the authenticated identity, and
// the Received field's "with" keyword (RFC 3848).
//
// A test whose client is missing is skipped and says why; under CI (CI set,
// as .ci/run does) it fails instead, since .ci/run installs the clients.
// Helpers here start with "rc" so as not to clash with other test files.

// rcMessage is what every client sends: CRLF line ends, as RFC 5321 2.3.8
// requires, and lines starting with a dot, which each client must
// dot-stuff (4.5.2) and the server must unstuff.
const rcMessage = "From: a@example.org\r\n" +
	"To: b@example.org, c@example.org\r\n" +
	"Subject: real client test\r\n" +
	"\r\n" +
	"Hello from a real client.\r\n" +
	".a line starting with a dot\r\n" +
	"..and one starting with two\r\n" +
	"last line\r\n"

// rcUser and rcPassword are the credentials rcAuthenticate accepts.
const rcUser, rcPassword = "user", "secret"

// rcAuthenticate is a Server.Authenticate that accepts only rcUser and
// rcPassword, and only over TLS: AUTH must not even reach it without.
func rcAuthenticate(ctx context.Context, env *Envelope, identity, username, password string) error {
	if env.TLS == nil {
		return &Reply{Code: 554, Text: "test: Authenticate called without TLS"}
	}
	if identity == "" && username == rcUser && password == rcPassword {
		return nil
	}
	return ErrAuthFailed
}

// rcNeed returns the path of a client's binary, or skips the test when it
// is missing (fails it under CI).
func rcNeed(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		rcMissing(t, fmt.Sprintf("%s not installed (%v)", name, err))
	}
	return path
}

// rcNeedSwaksTLS skips the test when swaks cannot do TLS, which it does
// through Perl's Net::SSLeay: Debian's swaks only recommends that package.
func rcNeedSwaksTLS(t *testing.T) {
	t.Helper()
	out, _ := rcRun(t, rcNeed(t, "swaks"), "--support")
	if !strings.Contains(out, "=== TLS supported") {
		rcMissing(t, "swaks has no TLS: Perl's Net::SSLeay is missing (Debian package libnet-ssleay-perl)")
	}
}

func rcMissing(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("%s; CI must install it (.ci/run)", why)
	}
	t.Skipf("%s; skipped here, CI fails instead", why)
}

// rcRun runs a client for at most 30 seconds, with no input, and returns
// its output, stdout and stderr together, and the error of its run
// (*exec.ExitError for an exit status other than 0). If the test fails
// later, the output is logged with it.
func rcRun(t *testing.T, path string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("timed out after 30s: %w", err)
	}
	// The log shows the command line, but for a script given as an
	// argument, which is in this file.
	line := []string{filepath.Base(path)}
	for _, a := range args {
		if strings.Contains(a, "\n") {
			a = "<script>"
		}
		line = append(line, a)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s:\n%s", strings.Join(line, " "), out.String())
		}
	})
	return out.String(), err
}

// rcMustRun is rcRun for a run that must succeed.
func rcMustRun(t *testing.T, path string, args ...string) string {
	t.Helper()
	out, err := rcRun(t, path, args...)
	if err != nil {
		t.Fatalf("%s: %v", filepath.Base(path), err)
	}
	return out
}

// rcCertificate makes a self-signed certificate for 127.0.0.1, ::1,
// "localhost" and "mx.test", and writes it and its key to PEM files. The
// certificate is its own CA, so clients trust it by loading certFile, and
// check the server's name against it as they would in production.
func rcCertificate(t *testing.T) (cert tls.Certificate, certFile, keyFile string) {
	t.Helper()
	cert, err := selfsigned.New("smtpd test", []string{"localhost", "mx.test", "127.0.0.1", "::1"}, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := selfsigned.PEM(cert)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return cert, certFile, keyFile
}

// rcMessageFile writes content to a file for a client to send.
func rcMessageFile(t *testing.T, content string) string {
	t.Helper()
	name := filepath.Join(t.TempDir(), "message.eml")
	if err := os.WriteFile(name, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return name
}

// rcStartTLS is startServer for implicit TLS (RFC 8314): it serves srv with
// ServeTLS and the certificate in certFile and keyFile.
func rcStartTLS(t *testing.T, srv *Server, certFile, keyFile string) string {
	t.Helper()
	return startServing(t, srv, func(l net.Listener) error { return srv.ServeTLS(l, certFile, keyFile) })
}

// rcPort returns the port of a "127.0.0.1:port" address.
func rcPort(t *testing.T, addr string) string {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// rcWant is what one delivery must look like. The sender is always
// a@example.org and the content rcMessage.
type rcWant struct {
	hello string   // the EHLO argument
	to    []string // the recipients, in order
	tls   bool     // whether the session was encrypted
	auth  string   // the authenticated identity, "" for none
	with  string   // the Received field's protocol (RFC 3848)
}

// rcCheck checks that rec holds exactly one message, as want says: its
// envelope, its Received field, and after it rcMessage to the octet.
func rcCheck(t *testing.T, rec *recorder, want rcWant) {
	t.Helper()
	msgs := rec.delivered()
	if len(msgs) != 1 {
		t.Fatalf("%d messages delivered, want 1", len(msgs))
	}
	env, data := msgs[0].env, msgs[0].data
	var to []string
	for _, r := range env.Recipients {
		to = append(to, r.ForwardPath.String())
	}
	if env.Hello != want.hello || !env.ESMTP || env.ReversePath.String() != "a@example.org" ||
		strings.Join(to, " ") != strings.Join(want.to, " ") {
		t.Errorf("envelope: EHLO %q (ESMTP %v), MAIL <%s>, RCPT %q; want EHLO %q, MAIL <a@example.org>, RCPT %q",
			env.Hello, env.ESMTP, env.ReversePath, to, want.hello, want.to)
	}
	if (env.TLS != nil) != want.tls || env.TLS != nil && !env.TLS.HandshakeComplete {
		t.Errorf("env.TLS = %+v, want TLS %v", env.TLS, want.tls)
	}
	if env.AuthIdentity != want.auth {
		t.Errorf("env.AuthIdentity = %q, want %q", env.AuthIdentity, want.auth)
	}
	received, content, ok := rcSplitReceived(data)
	if !ok {
		t.Fatalf("message does not start with a Received field:\n%q", data)
	}
	// RFC 5321 4.4; "for" only with one recipient.
	wantReceived := "Received: from " + want.hello + " ([127.0.0.1])\r\n\tby mx.test with " + want.with + " id " + env.ID
	if len(want.to) == 1 {
		wantReceived += "\r\n\tfor <" + want.to[0] + ">"
	}
	if !strings.HasPrefix(received, wantReceived+";\r\n\t") {
		t.Errorf("Received field\n%q\nwant it to start\n%q", received, wantReceived+";")
	}
	if content != rcMessage {
		t.Errorf("message after the Received field:\n%q\nwant\n%q", content, rcMessage)
	}
}

// rcSplitReceived splits the Received field the server prepends from the
// message: it ends at the first line that does not start with white space
// (RFC 5322 2.2.3 folding).
func rcSplitReceived(data string) (received, rest string, ok bool) {
	if !strings.HasPrefix(data, "Received: ") {
		return "", data, false
	}
	for i := 0; ; {
		j := strings.Index(data[i:], "\r\n")
		if j < 0 {
			return "", data, false
		}
		i += j + 2
		if i == len(data) || data[i] != ' ' && data[i] != '\t' {
			return data[:i], data[i:], true
		}
	}
}

// Python's smtplib. Each script below follows rcPython's prelude, which
// reads the arguments: the server's port, the CA file, the message file.

// rcPython runs a smtplib script against port with the message and the CA
// file, and returns its output; smtplib's debug output, the session as the
// client saw it, goes to stderr.
func rcPython(t *testing.T, script, port, caFile string) (string, error) {
	t.Helper()
	const prelude = `
import smtplib, ssl, sys
port, cafile, msg = int(sys.argv[1]), sys.argv[2], open(sys.argv[3], "rb").read()
# The certificate names 127.0.0.1, so the default context verifies it in
# full, host name included.
ctx = ssl.create_default_context(cafile=cafile)
`
	return rcRun(t, rcNeed(t, "python3"), "-c", prelude+script, port, caFile, rcMessageFile(t, rcMessage))
}

// TestPythonSMTPLib: smtplib's sendmail to two recipients, in the clear.
// smtplib greets with the host's FQDN, or an address literal when that has
// no dot; the script prints which.
func TestPythonSMTPLib(t *testing.T) {
	rec := &recorder{}
	addr := startServer(t, &Server{Handler: rec})
	out, err := rcPython(t, `
with smtplib.SMTP("127.0.0.1", port) as s:
    s.set_debuglevel(1)
    print("hello=" + s.local_hostname, flush=True)
    refused = s.sendmail("a@example.org", ["b@example.org", "c@example.org"], msg)
    assert not refused, refused
`, rcPort(t, addr), "")
	if err != nil {
		t.Fatalf("python3: %v", err)
	}
	m := regexp.MustCompile(`(?m)^hello=(.*)$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatal("python3 did not print the EHLO name")
	}
	rcCheck(t, rec, rcWant{hello: m[1], to: []string{"b@example.org", "c@example.org"}, with: "ESMTP"})
}

// TestPythonSTARTTLSLogin: starttls(), then AUTH with login(), which picks
// PLAIN from what the server offers, or with auth() and LOGIN explicitly.
func TestPythonSTARTTLSLogin(t *testing.T) {
	for _, tc := range []struct{ name, auth string }{
		{"login()", `s.login("user", "secret")`},
		{"LOGIN", `s.ehlo(); s.user, s.password = "user", "secret"; s.auth("LOGIN", s.auth_login)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cert, certFile, _ := rcCertificate(t)
			rec := &recorder{}
			addr := startServer(t, &Server{Handler: rec, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}},
				Authenticate: rcAuthenticate, RequireAuth: true})
			_, err := rcPython(t, `
with smtplib.SMTP("127.0.0.1", port, local_hostname="python.test") as s:
    s.set_debuglevel(1)
    s.starttls(context=ctx)
    `+tc.auth+`
    refused = s.sendmail("a@example.org", ["b@example.org"], msg)
    assert not refused, refused
`, rcPort(t, addr), certFile)
			if err != nil {
				t.Fatalf("python3: %v", err)
			}
			rcCheck(t, rec, rcWant{hello: "python.test", to: []string{"b@example.org"}, tls: true, auth: "user", with: "ESMTPSA"})
		})
	}
}

// TestPythonLoginWrongPassword: smtplib raises SMTPAuthenticationError
// with the server's 535 (RFC 4954 6), after trying each mechanism offered.
func TestPythonLoginWrongPassword(t *testing.T) {
	cert, certFile, _ := rcCertificate(t)
	rec := &recorder{}
	addr := startServer(t, &Server{Handler: rec, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}},
		Authenticate: rcAuthenticate})
	out, err := rcPython(t, `
with smtplib.SMTP("127.0.0.1", port) as s:
    s.set_debuglevel(1)
    s.starttls(context=ctx)
    try:
        s.login("user", "wrong")
    except smtplib.SMTPAuthenticationError as e:
        print("auth-error", e.smtp_code, e.smtp_error.decode(), flush=True)
    else:
        sys.exit("login with a wrong password succeeded")
`, rcPort(t, addr), certFile)
	if err != nil {
		t.Fatalf("python3: %v", err)
	}
	if !strings.Contains(out, "auth-error 535 5.7.8 ") {
		t.Errorf("want SMTPAuthenticationError 535 5.7.8")
	}
	if n := len(rec.delivered()); n != 0 {
		t.Errorf("%d messages delivered, want none", n)
	}
}

// TestPythonSMTPSSL: SMTP_SSL against ServeTLS, implicit TLS (RFC 8314),
// with AUTH at once since the session is encrypted from the start.
func TestPythonSMTPSSL(t *testing.T) {
	_, certFile, keyFile := rcCertificate(t)
	rec := &recorder{}
	addr := rcStartTLS(t, &Server{Handler: rec, Authenticate: rcAuthenticate, RequireAuth: true}, certFile, keyFile)
	_, err := rcPython(t, `
with smtplib.SMTP_SSL("127.0.0.1", port, local_hostname="python.test", context=ctx) as s:
    s.set_debuglevel(1)
    s.login("user", "secret")
    refused = s.sendmail("a@example.org", ["b@example.org", "c@example.org"], msg)
    assert not refused, refused
`, rcPort(t, addr), certFile)
	if err != nil {
		t.Fatalf("python3: %v", err)
	}
	rcCheck(t, rec, rcWant{hello: "python.test", to: []string{"b@example.org", "c@example.org"}, tls: true, auth: "user", with: "ESMTPSA"})
}

// TestPythonLoginWithoutTLS: AUTH is not offered in the clear, so login()
// refuses before sending a password.
func TestPythonLoginWithoutTLS(t *testing.T) {
	cert, certFile, _ := rcCertificate(t)
	addr := startServer(t, &Server{TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}, Authenticate: rcAuthenticate})
	out, err := rcPython(t, `
with smtplib.SMTP("127.0.0.1", port) as s:
    s.set_debuglevel(1)
    try:
        s.login("user", "secret")
    except smtplib.SMTPNotSupportedError as e:
        print("not-supported:", e, flush=True)
    else:
        sys.exit("login without TLS succeeded")
`, rcPort(t, addr), certFile)
	if err != nil {
		t.Fatalf("python3: %v", err)
	}
	if !strings.Contains(out, "not-supported: SMTP AUTH extension not supported by server") {
		t.Errorf("want SMTPNotSupportedError")
	}
	if strings.Contains(out, "send: 'AUTH") {
		t.Errorf("smtplib sent AUTH in the clear")
	}
}

// swaks. It sends the --data file with no header added, but ends it with
// CRLF "." CRLF of its own: a file ending in a line end gets an empty line
// more, so the file holds rcMessage without its last CRLF. swaks checks the
// server's certificate only when told to; the tests tell it to.

// rcSwaks runs swaks against addr with the sender, recipients and message
// of these tests, and args.
func rcSwaks(t *testing.T, addr string, args ...string) (string, error) {
	t.Helper()
	data := rcMessageFile(t, strings.TrimSuffix(rcMessage, "\r\n"))
	args = append([]string{"--server", addr, "--helo", "swaks.test",
		"--from", "a@example.org", "--to", "b@example.org,c@example.org",
		"--data", "@" + data}, args...)
	return rcRun(t, rcNeed(t, "swaks"), args...)
}

// TestSwaksPipelining: swaks in the clear with PIPELINING (RFC 2920), which
// sends MAIL, both RCPTs and DATA in one go.
func TestSwaksPipelining(t *testing.T) {
	rec := &recorder{}
	addr := startServer(t, &Server{Handler: rec})
	out, err := rcSwaks(t, addr, "--pipeline")
	if err != nil {
		t.Fatalf("swaks: %v", err)
	}
	// swaks prints the commands it sent in one go before their replies.
	if !strings.Contains(out, " -> MAIL FROM:<a@example.org>\n -> RCPT TO:<b@example.org>\n -> RCPT TO:<c@example.org>\n -> DATA\n") {
		t.Errorf("swaks did not pipeline")
	}
	rcCheck(t, rec, rcWant{hello: "swaks.test", to: []string{"b@example.org", "c@example.org"}, with: "ESMTP"})
}

// TestSwaksPipeliningSTARTTLSAuth: swaks --pipeline after STARTTLS and
// AUTH: an authenticated client pipelines MAIL, RCPT and DATA as RFC 2920
// allows, and the pipelining check, which holds it to the same rules as
// any client, lets it.
func TestSwaksPipeliningSTARTTLSAuth(t *testing.T) {
	rcNeedSwaksTLS(t)
	cert, certFile, _ := rcCertificate(t)
	rec := &recorder{}
	addr := startServer(t, &Server{Handler: rec, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}},
		Authenticate: rcAuthenticate, RequireAuth: true})
	out, err := rcSwaks(t, addr, "--pipeline", "--tls", "--tls-verify", "--tls-ca-path", certFile,
		"--auth", "PLAIN", "--auth-user", rcUser, "--auth-password", rcPassword)
	if err != nil {
		t.Fatalf("swaks: %v", err)
	}
	if !strings.Contains(out, " ~> MAIL FROM:<a@example.org>\n ~> RCPT TO:<b@example.org>\n ~> RCPT TO:<c@example.org>\n ~> DATA\n") {
		t.Errorf("swaks did not pipeline")
	}
	rcCheck(t, rec, rcWant{hello: "swaks.test", to: []string{"b@example.org", "c@example.org"}, tls: true, auth: "user", with: "ESMTPSA"})
}

// TestSwaksSTARTTLSAuth: swaks --tls, then AUTH with each mechanism.
func TestSwaksSTARTTLSAuth(t *testing.T) {
	rcNeedSwaksTLS(t)
	for _, mech := range []string{"LOGIN", "PLAIN"} {
		t.Run(mech, func(t *testing.T) {
			cert, certFile, _ := rcCertificate(t)
			rec := &recorder{}
			addr := startServer(t, &Server{Handler: rec, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}},
				Authenticate: rcAuthenticate, RequireAuth: true})
			_, err := rcSwaks(t, addr, "--tls", "--tls-verify", "--tls-ca-path", certFile,
				"--auth", mech, "--auth-user", rcUser, "--auth-password", rcPassword)
			if err != nil {
				t.Fatalf("swaks: %v", err)
			}
			rcCheck(t, rec, rcWant{hello: "swaks.test", to: []string{"b@example.org", "c@example.org"}, tls: true, auth: "user", with: "ESMTPSA"})
		})
	}
}

// TestSwaksTLSOnConnect: swaks --tls-on-connect against ServeTLS.
func TestSwaksTLSOnConnect(t *testing.T) {
	rcNeedSwaksTLS(t)
	_, certFile, keyFile := rcCertificate(t)
	rec := &recorder{}
	addr := rcStartTLS(t, &Server{Handler: rec, Authenticate: rcAuthenticate, RequireAuth: true}, certFile, keyFile)
	_, err := rcSwaks(t, addr, "--tls-on-connect", "--tls-verify", "--tls-ca-path", certFile,
		"--auth", "PLAIN", "--auth-user", rcUser, "--auth-password", rcPassword)
	if err != nil {
		t.Fatalf("swaks: %v", err)
	}
	rcCheck(t, rec, rcWant{hello: "swaks.test", to: []string{"b@example.org", "c@example.org"}, tls: true, auth: "user", with: "ESMTPSA"})
}

// TestSwaksAuthWithoutTLS: without --tls the server does not offer AUTH,
// so swaks --auth gives up before sending a password, and no mail goes.
func TestSwaksAuthWithoutTLS(t *testing.T) {
	cert, _, _ := rcCertificate(t)
	rec := &recorder{}
	addr := startServer(t, &Server{Handler: rec, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}},
		Authenticate: rcAuthenticate})
	out, err := rcSwaks(t, addr, "--auth", "PLAIN", "--auth-user", rcUser, "--auth-password", rcPassword)
	// swaks's exit status 28 is "error in AUTH transaction".
	if exit := (*exec.ExitError)(nil); !errors.As(err, &exit) || exit.ExitCode() != 28 {
		t.Fatalf("swaks: %v, want exit status 28", err)
	}
	if !strings.Contains(out, "*** Host did not advertise authentication") || strings.Contains(out, "-> AUTH") {
		t.Errorf("want swaks to find no AUTH offered, and send none")
	}
	if n := len(rec.delivered()); n != 0 {
		t.Errorf("%d messages delivered, want none", n)
	}
}

// curl. Its SMTP sends the --upload-file as it is, dot-stuffed, and converts
// LF to CRLF only with --crlf. It checks the server's certificate against
// --cacert (the brief's --insecure is not needed).

// rcCurl runs curl to deliver file to b@ and c@example.org at url, with args.
func rcCurl(t *testing.T, url, file string, args ...string) (string, error) {
	t.Helper()
	args = append([]string{"--silent", "--show-error", "--verbose", "--url", url,
		"--mail-from", "a@example.org", "--mail-rcpt", "b@example.org", "--mail-rcpt", "c@example.org",
		"--upload-file", file}, args...)
	return rcRun(t, rcNeed(t, "curl"), args...)
}

// TestCurlSTARTTLSAuth: curl --ssl-reqd (STARTTLS required) and --user,
// with each mechanism. The URL's path is curl's EHLO argument.
func TestCurlSTARTTLSAuth(t *testing.T) {
	for _, mech := range []string{"PLAIN", "LOGIN"} {
		t.Run(mech, func(t *testing.T) {
			cert, certFile, _ := rcCertificate(t)
			rec := &recorder{}
			addr := startServer(t, &Server{Handler: rec, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}},
				Authenticate: rcAuthenticate, RequireAuth: true})
			out, err := rcCurl(t, "smtp://"+addr+"/curl.test", rcMessageFile(t, rcMessage), "--ssl-reqd",
				"--cacert", certFile, "--user", rcUser+":"+rcPassword, "--login-options", "AUTH="+mech)
			if err != nil {
				t.Fatalf("curl: %v", err)
			}
			if !strings.Contains(out, "> AUTH "+mech) {
				t.Errorf("curl did not use AUTH %s", mech)
			}
			rcCheck(t, rec, rcWant{hello: "curl.test", to: []string{"b@example.org", "c@example.org"}, tls: true, auth: "user", with: "ESMTPSA"})
		})
	}
}

// TestCurlSMTPS: curl with an smtps:// URL against ServeTLS (RFC 8314).
func TestCurlSMTPS(t *testing.T) {
	_, certFile, keyFile := rcCertificate(t)
	rec := &recorder{}
	addr := rcStartTLS(t, &Server{Handler: rec, Authenticate: rcAuthenticate, RequireAuth: true}, certFile, keyFile)
	_, err := rcCurl(t, "smtps://"+addr+"/curl.test", rcMessageFile(t, rcMessage),
		"--cacert", certFile, "--user", rcUser+":"+rcPassword)
	if err != nil {
		t.Fatalf("curl: %v", err)
	}
	rcCheck(t, rec, rcWant{hello: "curl.test", to: []string{"b@example.org", "c@example.org"}, tls: true, auth: "user", with: "ESMTPSA"})
}

// TestCurlBareLF: a file with LF line ends is sent as it is, so the server
// refuses it (RFC 5321 2.3.8, SMTP smuggling); with --crlf curl converts the
// line ends and the message arrives as rcMessage.
func TestCurlBareLF(t *testing.T) {
	rec := &recorder{}
	addr := startServer(t, &Server{Handler: rec})
	file := rcMessageFile(t, strings.ReplaceAll(rcMessage, "\r\n", "\n"))
	out, err := rcCurl(t, "smtp://"+addr+"/curl.test", file)
	// curl's exit status 8 is "weird server reply", here the 550.
	if exit := (*exec.ExitError)(nil); !errors.As(err, &exit) || exit.ExitCode() != 8 {
		t.Fatalf("curl without --crlf: %v, want exit status 8", err)
	}
	if !strings.Contains(out, "< 550 5.5.2 Bare CR or LF") || len(rec.delivered()) != 0 {
		t.Fatalf("want the message with bare LFs refused with 550 5.5.2")
	}
	if _, err := rcCurl(t, "smtp://"+addr+"/curl.test", file, "--crlf"); err != nil {
		t.Fatalf("curl --crlf: %v", err)
	}
	rcCheck(t, rec, rcWant{hello: "curl.test", to: []string{"b@example.org", "c@example.org"}, with: "ESMTP"})
}

// TestCurlUserWithoutTLS: without --ssl-reqd, curl finds no AUTH offered and
// goes on without authenticating, never sending the password; a server that
// requires AUTH then refuses MAIL (RFC 4954 6).
func TestCurlUserWithoutTLS(t *testing.T) {
	cert, _, _ := rcCertificate(t)
	rec := &recorder{}
	addr := startServer(t, &Server{Handler: rec, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}},
		Authenticate: rcAuthenticate, RequireAuth: true})
	out, err := rcCurl(t, "smtp://"+addr+"/curl.test", rcMessageFile(t, rcMessage), "--user", rcUser+":"+rcPassword)
	if err == nil {
		t.Fatal("curl succeeded, want MAIL refused")
	}
	if strings.Contains(out, "> AUTH") || !strings.Contains(out, "< 530 5.7.0 Authentication required") {
		t.Errorf("want no AUTH sent and MAIL refused with 530 5.7.0")
	}
	if n := len(rec.delivered()); n != 0 {
		t.Errorf("%d messages delivered, want none", n)
	}
}
