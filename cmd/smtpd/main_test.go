package main

// The tests run the built program, as a user would: TestMain builds it once,
// each test starts it on a free loopback port ("-addr 127.0.0.1:0", the port
// read from the "listening on" line) and drives it with real clients
// (Python's smtplib, swaks, curl), then reads what it stored with Python's
// mailbox module, as a mail reader would.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// binary is the program under test, built by TestMain.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "smtpd-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "smtpd")
	build := exec.Command("go", "build", "-o", binary, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building smtpd:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// need skips the test when a client program is missing, or fails it in CI
// (CI=1), where .ci/run installs them all.
func need(t *testing.T, programs ...string) {
	t.Helper()
	for _, p := range programs {
		if _, err := exec.LookPath(p); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s is not installed, and CI is set: .ci/run should have installed it", p)
			}
			t.Skipf("%s is not installed; this test drives the server with it (apt-get install %s)", p, p)
		}
	}
}

// waitTimeout bounds every wait for the program: long enough for a slow
// CI machine under -race, short enough to fail rather than hang.
const waitTimeout = 20 * time.Second

// server is a running smtpd.
type server struct {
	t      *testing.T
	cmd    *exec.Cmd
	addr   string // host:port it listens on
	stdout lockedBuffer
	stderr lockedBuffer
	exited chan struct{} // closed when the process has exited
	err    error         // from Wait, once exited is closed
}

// start runs smtpd with args and "-addr 127.0.0.1:0" (unless args set
// -addr), and waits until it listens.
func start(t *testing.T, args ...string) *server {
	t.Helper()
	return startEnv(t, nil, args...)
}

// startEnv is start with extra environment variables for the program.
func startEnv(t *testing.T, env []string, args ...string) *server {
	t.Helper()
	if !hasFlag(args, "-addr") {
		args = append([]string{"-addr", "127.0.0.1:0"}, args...)
	}
	s := &server{t: t, exited: make(chan struct{})}
	s.cmd = exec.Command(binary, args...)
	s.cmd.Env = append(os.Environ(), env...)
	s.cmd.Stdout = &s.stdout
	stderr, err := s.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Read stderr as lines, so that waitLog can wait for one.
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			s.stderr.Write(append(sc.Bytes(), '\n'))
		}
		s.err = s.cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-s.exited:
		default:
			s.cmd.Process.Kill()
			<-s.exited
		}
		if t.Failed() {
			t.Logf("smtpd %s stderr:\n%s", strings.Join(args, " "), s.stderr.String())
		}
	})

	if strings.Contains(strings.Join(args, " "), "-log json") {
		var v struct{ Addr string }
		json.Unmarshal([]byte(s.waitLog(`"msg":"listening"`)), &v)
		s.addr = v.Addr
	} else {
		_, s.addr, _ = strings.Cut(s.waitLog("smtpd: listening on "), "listening on ")
	}
	if s.addr == "" {
		t.Fatalf("no address in the listening line:\n%s", s.stderr.String())
	}
	return s
}

func hasFlag(args []string, name string) bool {
	for _, a := range args {
		if a == name || strings.HasPrefix(a, name+"=") {
			return true
		}
	}
	return false
}

// waitLog waits until a line of the program's stderr contains s, and
// returns that line. It fails the test if the program exits first.
func (s *server) waitLog(sub string) string {
	s.t.Helper()
	deadline := time.After(waitTimeout)
	for {
		// Ask for the wake-up before looking, so that a line written
		// between the look and the wait is not missed.
		changed := s.stderr.changed()
		for _, line := range strings.Split(s.stderr.String(), "\n") {
			if strings.Contains(line, sub) {
				return line
			}
		}
		select {
		case <-s.exited:
			// The last lines may have arrived with the exit.
			for _, line := range strings.Split(s.stderr.String(), "\n") {
				if strings.Contains(line, sub) {
					return line
				}
			}
			s.t.Fatalf("smtpd exited (%v) before logging %q; stderr:\n%s", s.err, sub, s.stderr.String())
		case <-deadline:
			s.t.Fatalf("smtpd did not log %q within %v; stderr:\n%s", sub, waitTimeout, s.stderr.String())
		case <-changed:
		}
	}
}

// signal sends sig to the program.
func (s *server) signal(sig os.Signal) {
	s.t.Helper()
	if err := s.cmd.Process.Signal(sig); err != nil {
		s.t.Fatal(err)
	}
}

// wait waits for the program to exit and returns its exit status.
func (s *server) wait() int {
	s.t.Helper()
	select {
	case <-s.exited:
	case <-time.After(waitTimeout):
		s.t.Fatalf("smtpd did not exit within %v; stderr:\n%s", waitTimeout, s.stderr.String())
	}
	return s.cmd.ProcessState.ExitCode()
}

// stop stops the program with SIGTERM and checks that it exits with 0.
func (s *server) stop() {
	s.t.Helper()
	s.signal(syscall.SIGTERM)
	if code := s.wait(); code != 0 {
		s.t.Fatalf("smtpd exited with status %d after SIGTERM, want 0; stderr:\n%s", code, s.stderr.String())
	}
}

func (s *server) hostPort() (string, string) {
	h, p, _ := net.SplitHostPort(s.addr)
	return h, p
}

// lockedBuffer is a bytes.Buffer safe for the writer goroutine and the
// test, which can wait for it to change.
type lockedBuffer struct {
	mu   sync.Mutex
	b    bytes.Buffer
	wake chan struct{}
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.wake != nil {
		close(l.wake)
		l.wake = nil
	}
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// changed returns a channel closed at the next Write.
func (l *lockedBuffer) changed() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.wake == nil {
		l.wake = make(chan struct{})
	}
	return l.wake
}

// runClient runs a client program and returns its combined output. It
// fails the test when the program fails, unless mayFail.
func runClient(t *testing.T, mayFail bool, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil && !mayFail {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out.String())
		}
	case <-time.After(waitTimeout):
		cmd.Process.Kill()
		t.Fatalf("%s did not finish within %v:\n%s", name, waitTimeout, out.String())
	}
	return out.String()
}

// pySMTP sends one message with Python's smtplib and reports every reply
// as JSON, so that a test can check each step. The body's LF line ends are
// sent as CRLF by smtplib.
const pySMTP = `
import json, smtplib, sys
host, port, sender, body = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
rcpts = sys.argv[5:]
def r(code, text):
    return {"code": code, "text": text.decode() if isinstance(text, bytes) else str(text)}
out = {}
s = smtplib.SMTP(local_hostname="client.example")  # no slow getfqdn()
try:
    out["greeting"] = r(*s.connect(host, port))
except smtplib.SMTPConnectError as e:
    out["greeting"] = r(e.smtp_code, e.smtp_error)
    print(json.dumps(out)); sys.exit(0)
s.ehlo("client.example")
out["mail"] = r(*s.mail(sender))
out["rcpt"] = [r(*s.rcpt(x)) for x in rcpts]
try:
    out["data"] = r(*s.data(body))
except smtplib.SMTPDataError as e:
    out["data"] = r(e.smtp_code, e.smtp_error)
s.quit()
print(json.dumps(out))
`

type pyReply struct {
	Code int    `json:"code"`
	Text string `json:"text"`
}

type pyResult struct {
	Greeting pyReply   `json:"greeting"`
	Mail     pyReply   `json:"mail"`
	Rcpt     []pyReply `json:"rcpt"`
	Data     pyReply   `json:"data"`
}

// send sends one message through s with smtplib. from "" is the null
// reverse-path.
func (s *server) send(from string, to []string, body string) pyResult {
	s.t.Helper()
	need(s.t, "python3")
	host, port := s.hostPort()
	out := runClient(s.t, false, "python3", append([]string{"-c", pySMTP, host, port, from, body}, to...)...)
	var res pyResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		s.t.Fatalf("smtplib script: %v\n%s", err, out)
	}
	return res
}

// storedMessage is a message as Python's mailbox module reads it back.
type storedMessage struct {
	From    string      `json:"from"`   // mbox "From " line, without "From "
	Subdir  string      `json:"subdir"` // Maildir: "new" or "cur"
	Headers [][2]string `json:"headers"`
	Body    string      `json:"body"`
}

func (m storedMessage) header(name string) []string {
	var v []string
	for _, h := range m.Headers {
		if strings.EqualFold(h[0], name) {
			v = append(v, h[1])
		}
	}
	return v
}

// pyMailbox reads a Maildir or an mbox with Python's mailbox module.
const pyMailbox = `
import json, mailbox, sys
kind, path = sys.argv[1], sys.argv[2]
box = mailbox.Maildir(path, factory=None, create=False) if kind == "maildir" else mailbox.mbox(path, create=False)
out = []
for key in sorted(box.keys()):
    m = box[key]
    out.append({
        "from": m.get_from() if kind == "mbox" else "",
        "subdir": m.get_subdir() if kind == "maildir" else "",
        "headers": [[k, v] for k, v in m.items()],
        "body": m.get_payload(),
    })
print(json.dumps(out))
`

// readMailbox returns the messages of a Maildir or mbox (kind "maildir"
// or "mbox") as Python's mailbox module reads them.
func readMailbox(t *testing.T, kind, path string) []storedMessage {
	t.Helper()
	need(t, "python3")
	out := runClient(t, false, "python3", "-c", pyMailbox, kind, path)
	var msgs []storedMessage
	if err := json.Unmarshal([]byte(out), &msgs); err != nil {
		t.Fatalf("mailbox script: %v\n%s", err, out)
	}
	return msgs
}

// filesIn returns the names of the files in dir.
func filesIn(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// dialSMTP opens a raw connection for tests that need control over each
// byte, and reads the greeting.
func dialSMTP(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(waitTimeout))
	r := bufio.NewReader(c)
	expectReply(t, r, "220")
	return c, r
}

// expectReply reads one reply (all its lines, with net/textproto, which
// also checks that every line carries the same code) and checks that it
// starts with want: a code ("250"), a class ("5"), or a code and an
// enhanced code ("421 4.4.2"). It returns the reply as "CODE TEXT", the
// lines' texts joined by newlines.
func expectReply(t *testing.T, r *bufio.Reader, want string) string {
	t.Helper()
	code, msg, err := textproto.NewReader(r).ReadResponse(0)
	got := fmt.Sprintf("%d %s", code, msg)
	if err != nil {
		t.Fatalf("reading reply (want %s): %v (got %q)", want, err, got)
	}
	if !strings.HasPrefix(got, want) {
		t.Fatalf("got reply %q, want %s", got, want)
	}
	return got
}

// command writes a command line and checks the reply's code.
func command(t *testing.T, c net.Conn, r *bufio.Reader, line, code string) string {
	t.Helper()
	if _, err := io.WriteString(c, line+"\r\n"); err != nil {
		t.Fatal(err)
	}
	return expectReply(t, r, code)
}
