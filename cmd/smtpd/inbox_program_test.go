package main

// The web inbox of the built program: mail sent with Python's smtplib,
// the inbox read over HTTP, the store read back with Python's mailbox.

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// inboxURL returns the base URL of the program's inbox, "http://host:port/".
func (s *server) inboxURL() string {
	s.t.Helper()
	_, url, _ := strings.Cut(s.waitLog("smtpd: inbox on "), "inbox on ")
	return strings.TrimSpace(url)
}

// httpDo sends a request and returns the status and the body.
func httpDo(t *testing.T, method, url string, body io.Reader, user, password string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		req.SetBasicAuth(user, password)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// apiGet GETs an API path of the inbox at base into v; it wants 200.
func apiGet(t *testing.T, base, path string, v any) {
	t.Helper()
	code, body := httpDo(t, "GET", base+path, nil, "", "")
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, code, body)
	}
	if err := json.Unmarshal([]byte(body), v); err != nil {
		t.Fatalf("GET %s: %v\n%s", path, err, body)
	}
}

// queuedID is the message ID in the reply to DATA ("queued as ID").
func queuedID(t *testing.T, r pyResult) string {
	t.Helper()
	f := strings.Fields(r.Data.Text)
	if r.Data.Code != 250 || len(f) == 0 {
		t.Fatalf("DATA: %d %s", r.Data.Code, r.Data.Text)
	}
	return f[len(f)-1]
}

// listIDs returns the IDs of the inbox's list, newest first.
func listIDs(t *testing.T, base string) []string {
	t.Helper()
	var l listJSON
	apiGet(t, base, "api/v1/messages", &l)
	var ids []string
	for _, m := range l.Messages {
		ids = append(ids, m.ID)
	}
	return ids
}

// -maildir with -http: a message sent with smtplib is in the inbox when
// the client has its 250, with its envelope and its session, under the ID
// of the 250; a deletion removes the file; a restart reads the Maildir
// back, with the same IDs.
func TestInboxProgramMaildir(t *testing.T) {
	md := filepath.Join(t.TempDir(), "Maildir")
	s := start(t, "-maildir", md, "-http", "127.0.0.1:0")
	base := s.inboxURL()
	first := queuedID(t, s.send("alice@example.org", []string{"bob@example.net", "carol@example.net"},
		"From: Alice <alice@example.org>\nSubject: via smtplib\n\nHello from Python.\n"))
	second := queuedID(t, s.send("", []string{"bob@example.net"}, "Subject: a bounce\n\nReturned.\n"))

	var m messageJSON
	apiGet(t, base, "api/v1/message/"+first, &m)
	if m.Subject != "via smtplib" || m.From.Name != "Alice" || m.Text != "Hello from Python.\n" ||
		m.Envelope.ReversePath != "alice@example.org" || strings.Join(m.Envelope.ForwardPaths, " ") != "bob@example.net carol@example.net" {
		t.Errorf("message %s: %+v", first, m)
	}
	var sess sessionJSON
	apiGet(t, base, "api/v1/message/"+first+"/session", &sess)
	var verbs []string
	for _, e := range sess.Events {
		if e.Kind == "command" {
			verbs = append(verbs, e.Verb)
		}
	}
	if strings.Join(verbs, " ") != "EHLO MAIL RCPT RCPT DATA QUIT" {
		t.Errorf("session commands %v", verbs)
	}
	if ids := listIDs(t, base); strings.Join(ids, " ") != second+" "+first {
		t.Errorf("list %v, want [%s %s]", ids, second, first)
	}

	if code, body := httpDo(t, "DELETE", base+"api/v1/messages", strings.NewReader(`{"IDs":["`+first+`"]}`), "", ""); code != 200 {
		t.Fatalf("DELETE: %d %s", code, body)
	}
	if files := filesIn(t, filepath.Join(md, "new")); len(files) != 1 {
		t.Errorf("Maildir new/ after deleting one of two: %v", files)
	}
	s.stop()

	s = start(t, "-maildir", md, "-http", "127.0.0.1:0")
	base = s.inboxURL()
	if ids := listIDs(t, base); strings.Join(ids, " ") != second {
		t.Errorf("after a restart: %v, want [%s]", ids, second)
	}
	apiGet(t, base, "api/v1/message/"+second, &m)
	if m.Envelope.ReversePath != "" || m.Subject != "a bounce" {
		t.Errorf("after a restart: %+v", m)
	}
	if code, _ := httpDo(t, "GET", base+"api/v1/message/"+second+"/session", nil, "", ""); code != http.StatusNotFound {
		t.Errorf("the session of a message stored before the start: %d, want 404", code)
	}
}

// -mbox with -http: the inbox reads each message back from the mbox
// (mboxrd quoting undone); deleting one rewrites the mbox, which Python's
// mailbox still reads, and the inbox still finds the messages after it.
func TestInboxProgramMbox(t *testing.T) {
	box := filepath.Join(t.TempDir(), "box")
	s := start(t, "-mbox", box, "-http", "127.0.0.1:0")
	base := s.inboxURL()
	body := "From here\n>From there\nend\n"
	var ids []string
	for _, subject := range []string{"one", "two", "three"} {
		ids = append(ids, queuedID(t, s.send("a@example.org", []string{"b@example.net"}, "Subject: "+subject+"\n\n"+body)))
	}
	code, raw := httpDo(t, "GET", base+"api/v1/message/"+ids[1]+"/raw", nil, "", "")
	if code != 200 || !strings.HasPrefix(raw, "Return-Path: <a@example.org>\n") || !strings.HasSuffix(raw, "Subject: two\n\n"+body) {
		t.Errorf("raw of the second message (%d):\n%q", code, raw)
	}
	if code, _ := httpDo(t, "DELETE", base+"api/v1/messages", strings.NewReader(`{"IDs":["`+ids[0]+`"]}`), "", ""); code != 200 {
		t.Fatalf("DELETE: %d", code)
	}
	msgs := readMailbox(t, "mbox", box)
	if len(msgs) != 2 || msgs[0].header("Subject")[0] != "two" || msgs[1].header("Subject")[0] != "three" {
		t.Errorf("the mbox after deleting the first: %+v", msgs)
	}
	var m messageJSON
	apiGet(t, base, "api/v1/message/"+ids[2], &m)
	if m.Subject != "three" || m.Text != body {
		t.Errorf("the third message after the first was cut out: %q %q", m.Subject, m.Text)
	}
	ids = append(ids, queuedID(t, s.send("a@example.org", []string{"b@example.net"}, "Subject: four\n\nx\n")))
	want := strings.Join([]string{ids[3], ids[2], ids[1]}, " ")
	if got := strings.Join(listIDs(t, base), " "); got != want {
		t.Errorf("list %s, want %s", got, want)
	}
	s.stop()
	s = start(t, "-mbox", box, "-http", "127.0.0.1:0")
	if got := strings.Join(listIDs(t, s.inboxURL()), " "); got != want {
		t.Errorf("after a restart: %s, want %s", got, want)
	}
}

// Standard output and -discard: the inbox keeps the last -http-keep
// messages in memory.
func TestInboxProgramMemory(t *testing.T) {
	s := start(t, "-http", "127.0.0.1:0", "-http-keep", "2")
	base := s.inboxURL()
	var ids []string
	for _, subject := range []string{"one", "two", "three"} {
		ids = append(ids, queuedID(t, s.send("a@example.org", []string{"b@example.net"}, "Subject: "+subject+"\n\nx\n")))
	}
	if got := strings.Join(listIDs(t, base), " "); got != ids[2]+" "+ids[1] {
		t.Errorf("stdout, -http-keep 2: %s, want the last two of %v", got, ids)
	}
	if !strings.Contains(s.stdout.String(), "Subject: one") {
		t.Errorf("the messages are not printed as well")
	}

	d := start(t, "-discard", "-http", "127.0.0.1:0")
	id := queuedID(t, d.send("a@example.org", []string{"b@example.net"}, "Subject: dropped\n\nx\n"))
	code, raw := httpDo(t, "GET", d.inboxURL()+"api/v1/message/"+id+"/raw", nil, "", "")
	if code != 200 || !strings.HasSuffix(raw, "Subject: dropped\r\n\r\nx\r\n") {
		t.Errorf("-discard: %d %q", code, raw)
	}
}

// -http-auth: HTTP Basic authentication with the users of the file.
func TestInboxProgramAuth(t *testing.T) {
	users := filepath.Join(t.TempDir(), "web-users")
	os.WriteFile(users, []byte("carol:web pass\n"), 0o600)
	s := start(t, "-discard", "-http", "127.0.0.1:0", "-http-auth", users)
	base := s.inboxURL()
	for _, tc := range []struct {
		user, password string
		want           int
	}{{"", "", 401}, {"carol", "wrong", 401}, {"carol", "web pass", 200}} {
		if code, _ := httpDo(t, "GET", base+"api/v1/messages", nil, tc.user, tc.password); code != tc.want {
			t.Errorf("%q:%q: %d, want %d", tc.user, tc.password, code, tc.want)
		}
	}
}
