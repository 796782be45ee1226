package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"smtpd/internal/selfsigned"
)

// pySession runs an SMTP or LMTP session with Python's smtplib, one step
// per element of the JSON argument's "steps", and prints one result per
// step (the connection's greeting first) as JSON. kind is "smtp", "lmtp"
// or "ssl" (implicit TLS); the server's certificate is verified against
// "cafile" when given, and not at all otherwise.
const pySession = `
import base64, json, smtplib, ssl, sys
spec = json.loads(sys.argv[1])
kind, cafile = spec["kind"], spec.get("cafile")
ctx = ssl.create_default_context(cafile=cafile) if cafile else ssl._create_unverified_context()
def r(code, text):
    return {"code": code, "text": text.decode() if isinstance(text, bytes) else str(text)}
def cert(s):
    return base64.b64encode(s.sock.getpeercert(True)).decode()
if kind == "ssl":
    s = smtplib.SMTP_SSL(local_hostname="client.example", context=ctx)
else:
    s = (smtplib.LMTP if kind == "lmtp" else smtplib.SMTP)(local_hostname="client.example")
s._host = spec["host"]  # the name STARTTLS verifies; set by the constructor only when it connects
out = []
try:
    out.append(r(*s.connect(spec["host"], int(spec["port"]))))
    if kind == "ssl":
        out[0]["cert"] = cert(s)
except smtplib.SMTPConnectError as e:
    out.append(r(e.smtp_code, e.smtp_error))
    print(json.dumps(out)); sys.exit(0)
rcpts = 0
for op, *args in spec["steps"]:
    try:
        if op == "ehlo":
            res = r(*s.ehlo("client.example"))
            res["features"] = [k + " " + v for k, v in s.esmtp_features.items()]
        elif op == "starttls":
            res = r(*s.starttls(context=ctx))
            res["cert"] = cert(s)
        elif op == "auth":  # mechanism, user, password[, authorization identity]
            mech, s.user, s.password = args[0], args[1], args[2]
            if mech == "PLAIN":
                authz = args[3] if len(args) > 3 else ""
                res = r(*s.auth("PLAIN", lambda challenge=None: authz + "\0" + s.user + "\0" + s.password))
            else:
                res = r(*s.auth(mech, s.auth_login, initial_response_ok=False))
        elif op == "mail":
            res = r(*s.mail(args[0]))
        elif op == "rcpt":
            res = r(*s.rcpt(args[0]))
            rcpts += res["code"] // 100 == 2
        elif op == "data":
            res = r(*s.data(args[0]))
            if kind == "lmtp":  # one reply per accepted recipient (RFC 2033 4.2)
                res["more"] = [r(*s.getreply()) for _ in range(rcpts - 1)]
            rcpts = 0
        elif op == "quit":
            res = r(*s.quit())
    except smtplib.SMTPResponseException as e:
        res = r(e.smtp_code, e.smtp_error)
    except smtplib.SMTPException as e:
        res = r(0, str(e))
    out.append(res)
print(json.dumps(out))
`

// step is one result of pySession.
type step struct {
	Code     int       `json:"code"`
	Text     string    `json:"text"`
	Features []string  `json:"features"` // EHLO's keywords, lower case, with their parameters
	Cert     []byte    `json:"cert"`     // the server's certificate, DER, after TLS began
	More     []pyReply `json:"more"`     // LMTP's further replies to the message
}

// hasFeature reports whether an EHLO result offers keyword (lower case).
func (st step) hasFeature(keyword string) bool {
	return slices.ContainsFunc(st.Features, func(f string) bool { return strings.HasPrefix(f, keyword+" ") })
}

// session runs pySession against addr and returns a result per step, the
// greeting first. A step is its operation followed by its arguments.
func session(t *testing.T, addr, kind, cafile string, steps ...[]string) []step {
	t.Helper()
	need(t, "python3")
	host, port, _ := net.SplitHostPort(addr)
	spec, _ := json.Marshal(map[string]any{"host": host, "port": port, "kind": kind, "cafile": cafile, "steps": steps})
	out := runClient(t, false, "python3", "-c", pySession, string(spec))
	var res []step
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("smtplib script: %v\n%s", err, out)
	}
	if len(res) != len(steps)+1 {
		t.Fatalf("smtplib script: %d results for %d steps and the greeting: %+v", len(res), len(steps), res)
	}
	return res
}

// sendSteps are the steps of one message after the greeting(s).
func sendSteps(from, to, body string) [][]string {
	return [][]string{{"mail", from}, {"rcpt", to}, {"data", body}, {"quit"}}
}

// tlsAddr returns the address of the -tls-addr listener.
func (s *server) tlsAddr() string {
	s.t.Helper()
	line := s.waitLog(" (TLS)")
	_, addr, _ := strings.Cut(strings.TrimSuffix(line, " (TLS)"), "listening on ")
	return addr
}

// writeCert writes a certificate for host (and the loopback addresses)
// and its key to PEM files in dir, named name.crt and name.key.
func writeCert(t *testing.T, dir, name, host string) (certFile, keyFile string) {
	t.Helper()
	cert, err := selfSigned(host)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := selfsigned.PEM(cert)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	os.WriteFile(certFile, certPEM, 0o600)
	os.WriteFile(keyFile, keyPEM, 0o600)
	return certFile, keyFile
}

// -tls-cert and -tls-key: STARTTLS with a certificate the client verifies
// (by the address it connected to), and with -tls-addr the same on a
// second listener with implicit TLS (RFC 8314).
func TestTLSCertFiles(t *testing.T) {
	dir := t.TempDir()
	cert, key := writeCert(t, dir, "mx", "mx.example.org")
	md := filepath.Join(dir, "Maildir")
	s := start(t, "-maildir", md, "-hostname", "mx.example.org", "-tls-cert", cert, "-tls-key", key, "-tls-addr", "127.0.0.1:0")

	res := session(t, s.addr, "smtp", cert, append([][]string{{"ehlo"}, {"starttls"}, {"ehlo"}},
		sendSteps("alice@example.org", "bob@example.org", "Subject: starttls\n\nx\n")...)...)
	if !res[1].hasFeature("starttls") {
		t.Errorf("EHLO does not offer STARTTLS: %v", res[1].Features)
	}
	if res[2].Code != 220 || res[3].hasFeature("starttls") {
		t.Errorf("STARTTLS %+v; EHLO after it %v", res[2], res[3].Features)
	}
	if res[6].Code != 250 {
		t.Errorf("message over STARTTLS: %+v", res[6])
	}

	res = session(t, s.tlsAddr(), "ssl", cert, append([][]string{{"ehlo"}},
		sendSteps("alice@example.org", "bob@example.org", "Subject: implicit\n\nx\n")...)...)
	if res[0].Code != 220 || len(res[0].Cert) == 0 {
		t.Errorf("implicit TLS greeting %+v", res[0])
	}
	if res[1].hasFeature("starttls") || res[4].Code != 250 {
		t.Errorf("implicit TLS: EHLO %v, message %+v", res[1].Features, res[4])
	}
	s.stop()

	msgs := readMailbox(t, "maildir", md)
	if len(msgs) != 2 {
		t.Fatalf("%d messages stored, want 2", len(msgs))
	}
	for _, m := range msgs {
		if r := m.header("Received"); len(r) != 1 || !strings.Contains(r[0], "with ESMTPS") {
			t.Errorf("Received %q, want ESMTPS (RFC 3848)", r)
		}
	}
}

// -tls-self-signed makes a certificate for -hostname and the loopback
// addresses, and logs its fingerprint, by which a client can pin it.
func TestTLSSelfSigned(t *testing.T) {
	s := start(t, "-discard", "-hostname", "mx.example.org", "-tls-self-signed")
	res := session(t, s.addr, "smtp", "", []string{"ehlo"}, []string{"starttls"}, []string{"quit"})
	if res[2].Code != 220 {
		t.Fatalf("STARTTLS: %+v", res[2])
	}
	cert, err := x509.ParseCertificate(res[2].Cert)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cert.DNSNames, []string{"mx.example.org"}) {
		t.Errorf("DNS names %q, want mx.example.org", cert.DNSNames)
	}
	for _, ip := range []string{"127.0.0.1", "::1"} {
		if !slices.ContainsFunc(cert.IPAddresses, func(a net.IP) bool { return a.Equal(net.ParseIP(ip)) }) {
			t.Errorf("IP addresses %v lack %s", cert.IPAddresses, ip)
		}
	}
	if now := time.Now(); now.Before(cert.NotBefore) || now.After(cert.NotAfter) {
		t.Errorf("not valid now: %v to %v", cert.NotBefore, cert.NotAfter)
	}
	if _, ok := cert.PublicKey.(*ecdsa.PublicKey); !ok {
		t.Errorf("key %T, want ECDSA", cert.PublicKey)
	}
	sum := sha256.Sum256(cert.Raw)
	s.waitLog("sha256=" + hex.EncodeToString(sum[:]))
	s.stop()
}

// -v shows the session after STARTTLS and on implicit TLS, AUTH secrets
// still masked. swaks sends the password with PLAIN and then with LOGIN.
func TestVerboseLogTLS(t *testing.T) {
	need(t, "swaks")
	authFile := filepath.Join(t.TempDir(), "users")
	os.WriteFile(authFile, []byte("alice:s3cret-pass\n"), 0o600)
	s := start(t, "-discard", "-v", "-tls-self-signed", "-tls-addr", "127.0.0.1:0", "-auth-file", authFile)
	host, port := s.hostPort()
	_, tlsPort, _ := net.SplitHostPort(s.tlsAddr())
	for _, tc := range []struct{ port, tls, mech string }{
		{port, "--tls", "PLAIN"},
		{tlsPort, "--tls-on-connect", "LOGIN"},
	} {
		out := runClient(t, false, "swaks", "--server", host, "--port", tc.port, tc.tls, "--helo", "client.example",
			"--auth", tc.mech, "--auth-user", "alice", "--auth-password", "s3cret-pass",
			"--from", "a@example.org", "--to", "b@example.org", "--body", "secret-content")
		if !strings.Contains(out, "<~  235 ") || !strings.Contains(out, "<~  250 2.0.0 OK") {
			t.Fatalf("swaks %s %s did not authenticate and send:\n%s", tc.tls, tc.mech, out)
		}
		s.waitLog(`msg="session ended"`)
	}
	s.stop()

	log := s.stderr.String()
	_, afterTLS, ok := strings.Cut(log, `msg="TLS started"`)
	if !ok {
		t.Fatalf("-v log does not show TLS starting:\n%s", log)
	}
	for _, want := range []string{
		`line="AUTH PLAIN ***"`, `line="AUTH LOGIN"`, `line=***`, `line="235 `,
		`line="MAIL FROM:<a@example.org>"`, `line="RCPT TO:<b@example.org>"`, `line="250 2.0.0 OK: queued as `,
	} {
		if !strings.Contains(afterTLS, want) {
			t.Errorf("-v log after TLS lacks %s:\n%s", want, log)
		}
	}
	if n := strings.Count(log, `msg="TLS started"`); n != 2 {
		t.Errorf("TLS started %d times, want 2 (STARTTLS, implicit TLS):\n%s", n, log)
	}
	for _, secret := range []string{"s3cret", b64("s3cret-pass"), b64("\x00alice\x00s3cret-pass"), "secret-content"} {
		if strings.Contains(log, secret) {
			t.Errorf("-v log shows %q:\n%s", secret, log)
		}
	}
	// Nothing of the handshake reached the log as client lines.
	if bytes.ContainsRune([]byte(log), 0x16) {
		t.Errorf("-v log holds TLS records:\n%q", log)
	}
}
