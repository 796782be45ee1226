package main

// The web inbox in a real browser: headless Chromium, driven from its
// command line (--dump-dom, --screenshot), against the built program with
// mail sent by Python's smtplib. No browser-driver module: what the page
// did is read from the DOM Chromium dumps, and what it fetched from the
// requests a local HTTP server saw.

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// browserTimeout bounds one run of Chromium.
const browserTimeout = 90 * time.Second

// chromiumCmd returns the command that runs headless Chromium with args,
// in a profile of its own.
func chromiumCmd(t *testing.T, ctx context.Context, args ...string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
		"--hide-scrollbars", "--user-data-dir=" + t.TempDir()}
	cmd := exec.CommandContext(ctx, "chromium", append(base, args...)...)
	var out bytes.Buffer
	cmd.Stdout = &out
	return cmd, &out
}

// chromium runs headless Chromium with args and returns what it printed
// (the DOM, for --dump-dom).
func chromium(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), browserTimeout)
	defer cancel()
	cmd, out := chromiumCmd(t, ctx, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return out.String()
}

// dumpDOM loads url and returns its DOM. budget is virtual time in ms
// for the page's timers and loads to run (0: the DOM at the load event);
// a page with an open event stream must not be given one, since
// Chromium's virtual time waits for the stream to end.
func dumpDOM(t *testing.T, url string, budget string) string {
	t.Helper()
	args := []string{"--dump-dom"}
	if budget != "" {
		args = append(args, "--virtual-time-budget="+budget)
	}
	return chromium(t, append(args, url)...)
}

// shotsDir is where the screenshots go: $INBOX_SHOTS, or a temporary
// directory.
func shotsDir(t *testing.T) string {
	if d := os.Getenv("INBOX_SHOTS"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.TempDir()
}

// requestLog is a web server elsewhere that a message points to: it
// counts what is fetched from it, and serves /control, the message's HTML
// without any protection, to show that the test would see a script run.
type requestLog struct {
	mu    sync.Mutex
	paths []string
}

func (l *requestLog) count(path string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, p := range l.paths {
		if p == path {
			n++
		}
	}
	return n
}

func TestInboxBrowser(t *testing.T) {
	need(t, "chromium", "python3")
	log := &requestLog{}
	var control string
	remote := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		log.mu.Lock()
		log.paths = append(log.paths, r.URL.Path)
		log.mu.Unlock()
		if r.URL.Path == "/control" {
			w.Header().Set("Content-Type", "text/html")
			w.Write([]byte(control))
		}
	}))
	defer remote.Close()
	msg := strings.ReplaceAll(rich, "REMOTE", remote.URL)
	_, html, _ := strings.Cut(msg, "<html>")
	html, _, _ = strings.Cut(html, "</html>")
	control = "<html>" + html + "</html>"
	shots := shotsDir(t)

	s := start(t, "-maildir", filepath.Join(t.TempDir(), "Maildir"), "-http", "127.0.0.1:0")
	base := s.inboxURL()
	queuedID(t, s.send("bob@example.org", []string{"carol@example.net"}, "Subject: an earlier one\n\nHi.\n"))
	id := queuedID(t, s.send("jorg@example.org", []string{"bob@example.net"}, msg))

	// The list shows the message.
	dom := dumpDOM(t, base, "")
	if !strings.Contains(dom, `<tr data-id="`+id+`" class="unread">`) || !strings.Contains(dom, "Hello wörld rich") {
		t.Errorf("the list does not show message %s:\n%s", id, dom)
	}
	chromium(t, "--window-size=1200,420", "--screenshot="+filepath.Join(shots, "list.png"), base)

	// The message page shows the text and frames the HTML part, whose
	// script does not run and whose remote image is not fetched.
	dom = dumpDOM(t, base+"message/"+id, "5000")
	if !strings.Contains(dom, "Hello Jörg, plain text.") || !strings.Contains(dom, `<iframe sandbox="" src="/message/`+id+`/html"`) {
		t.Errorf("the message page:\n%s", dom)
	}
	chromium(t, "--window-size=1200,1000", "--virtual-time-budget=5000", "--screenshot="+filepath.Join(shots, "message.png"), base+"message/"+id)
	dom = dumpDOM(t, base+"message/"+id+"/html", "5000")
	// The script would have replaced the heading's text.
	if !strings.Contains(dom, `<h1 id="h">HTML part</h1>`) || strings.Contains(dom, `<h1 id="h">SCRIPT RAN</h1>`) {
		t.Errorf("the HTML part's script ran:\n%s", dom)
	}
	if n, m := log.count("/pixel.png"), log.count("/script"); n != 0 || m != 0 {
		t.Errorf("the remote image was fetched %d times, the script's URL %d times; want 0", n, m)
	}
	// The same HTML without the inbox's protection: the script runs and
	// the image is fetched, so the checks above can fail.
	dom = dumpDOM(t, remote.URL+"/control", "5000")
	if ran := strings.Contains(dom, `<h1 id="h">SCRIPT RAN</h1>`); !ran || log.count("/pixel.png") == 0 || log.count("/script") == 0 {
		t.Errorf("the unprotected HTML: script ran %v, image fetched %d times", ran, log.count("/pixel.png"))
	}

	// The session page lists the commands and replies.
	dom = dumpDOM(t, base+"message/"+id+"/session", "")
	for _, want := range []string{"<code>ehlo ", "<code>mail FROM:&lt;jorg@example.org&gt;", "<code>rcpt TO:&lt;bob@example.net&gt;",
		"<code>data</code>", "<code>354 ", "<code>quit</code>", "identified → mail", `href="/state-table#rule-MAIL-1"`} {
		if !strings.Contains(dom, want) {
			t.Errorf("the session page lacks %q", want)
		}
	}
	s.stop()

	liveUpdate(t)
}

// liveUpdate: a message that arrives while the list is open appears in
// it without a reload. Chromium holds the page while its event stream is
// open (virtual time waits for the stream); the program logs when the
// stream opens (-v), the message is sent then, and the program is stopped,
// which ends the stream after the event, so Chromium dumps the DOM.
func liveUpdate(t *testing.T) {
	s := start(t, "-v", "-discard", "-http", "127.0.0.1:0")
	base := s.inboxURL()
	ctx, cancel := context.WithTimeout(context.Background(), browserTimeout)
	defer cancel()
	cmd, out := chromiumCmd(t, ctx, "--dump-dom", "--virtual-time-budget=10000", base)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s.waitLogWithin("inbox: event stream opened", browserTimeout)
	id := queuedID(t, s.send("late@example.org", []string{"bob@example.net"}, "Subject: arrived while open\n\nHi.\n"))
	s.stop()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("chromium: %v", err)
	}
	dom := out.String()
	if !strings.Contains(dom, `<tr data-id="`+id+`" class="unread live">`) || !strings.Contains(dom, "arrived while open") ||
		!strings.Contains(dom, `<span id="total">1</span>`) {
		t.Errorf("the message sent while the list was open is not in it:\n%s", dom)
	}
}

// waitLogWithin is waitLog with its own time limit.
func (s *server) waitLogWithin(sub string, d time.Duration) {
	s.t.Helper()
	deadline := time.After(d)
	for {
		changed := s.stderr.changed()
		if strings.Contains(s.stderr.String(), sub) {
			return
		}
		select {
		case <-s.exited:
			s.t.Fatalf("smtpd exited before logging %q:\n%s", sub, s.stderr.String())
		case <-deadline:
			s.t.Fatalf("smtpd did not log %q within %v:\n%s", sub, d, s.stderr.String())
		case <-changed:
		}
	}
}
