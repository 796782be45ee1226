package main

// The web inbox's JSON API, in-process (inbox_harness_test.go).

import (
	"bufio"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// GET /api/v1/messages and /api/v1/search: newest first, mailpit's
// fields, ?query= by address and subject, ?start= and ?limit=.
func TestInboxAPIList(t *testing.T) {
	ti := newTestInbox(t, nil)
	first := ti.send("alice@example.org", []string{"bob@example.net"}, plain("Alice <alice@example.org>", "Bob <bob@example.net>", "first"))
	second := ti.send("carol@example.org", []string{"dave@example.net"}, plain("carol@example.org", "dave@example.net", "second one"))
	third := ti.send("jorg@example.org", []string{"bob@example.net"}, rich)

	var l listJSON
	ti.getJSON("/api/v1/messages", &l)
	if l.Total != 3 || l.Count != 3 || l.MessagesCount != 3 || l.Unread != 3 || l.Start != 0 {
		t.Errorf("list: total %d count %d matched %d unread %d start %d, want 3 3 3 3 0", l.Total, l.Count, l.MessagesCount, l.Unread, l.Start)
	}
	var ids []string
	for _, m := range l.Messages {
		ids = append(ids, m.ID)
	}
	if strings.Join(ids, " ") != third+" "+second+" "+first {
		t.Errorf("order %v, want newest first %v", ids, []string{third, second, first})
	}
	m := l.Messages[0]
	if m.From != (address{"Jörg", "jorg@example.org"}) || len(m.To) != 2 || m.To[0] != (address{"Bob", "bob@example.net"}) ||
		len(m.Cc) != 1 || m.Subject != "Hello wörld rich" || m.Attachments != 1 || m.Size < int64(len(rich)) ||
		m.Date.Format("2006-01-02 15:04 -0700") != "2026-12-01 10:00 +0100" || m.MessageID != "rich@example.org" {
		t.Errorf("summary of the rich message: %+v", m)
	}
	if l.Messages[2].From != (address{"Alice", "alice@example.org"}) || l.Messages[2].Attachments != 0 {
		t.Errorf("summary of the first message: %+v", l.Messages[2])
	}

	for _, tc := range []struct {
		query string
		want  []string
	}{
		{"second", []string{second}},
		{"subject:first", []string{first}},
		{"from:carol", []string{second}},
		{"to:bob", []string{third, first}},
		{"BOB hello", []string{third}}, // words must all match; case does not matter
		{"dave", []string{third, second}},
		{"nobody", nil},
	} {
		for _, path := range []string{"/api/v1/messages?query=", "/api/v1/search?query="} {
			var got listJSON
			ti.getJSON(path+strings.ReplaceAll(tc.query, " ", "+"), &got)
			var gotIDs []string
			for _, m := range got.Messages {
				gotIDs = append(gotIDs, m.ID)
			}
			if strings.Join(gotIDs, " ") != strings.Join(tc.want, " ") || got.MessagesCount != len(tc.want) || got.Total != 3 {
				t.Errorf("%s%s: %v (matched %d, total %d), want %v", path, tc.query, gotIDs, got.MessagesCount, got.Total, tc.want)
			}
		}
	}

	ti.getJSON("/api/v1/messages?start=1&limit=1", &l)
	if l.Count != 1 || l.Start != 1 || l.Messages[0].ID != second || l.MessagesCount != 3 {
		t.Errorf("start=1 limit=1: %+v", l)
	}
	ti.getJSON("/api/v1/messages?start=5", &l)
	if l.Count != 0 || l.Messages == nil {
		t.Errorf("start past the end: %+v (want an empty list, not null)", l)
	}
	ti.get("/api/v1/messages?start=-1", http.StatusBadRequest)
	ti.get("/api/v1/messages?limit=x", http.StatusBadRequest)
}

// GET /api/v1/message/{ID}: decoded fields, the text and HTML parts, the
// parts with their IDs, the envelope, the header.
func TestInboxAPIMessage(t *testing.T) {
	ti := newTestInbox(t, nil)
	id := ti.send("jorg@example.org", []string{"bob@example.net", "carol@example.net"}, rich)
	var m messageJSON
	ti.getJSON("/api/v1/message/"+id, &m)
	if m.ID != id || m.Subject != "Hello wörld rich" || m.From.Name != "Jörg" || !m.Read {
		t.Errorf("message: ID %q subject %q from %+v read %v", m.ID, m.Subject, m.From, m.Read)
	}
	if m.Text != "Hello Jörg, plain text." {
		t.Errorf("Text %q: want the quoted-printable ISO-8859-1 part decoded", m.Text)
	}
	if want := `<img src="/api/v1/message/` + id + `/part/1.2">`; !strings.Contains(m.HTML, want) {
		t.Errorf("HTML %q lacks the cid: image made local: %s", m.HTML, want)
	}
	if len(m.Inline) != 1 || m.Inline[0].PartID != "1.2" || m.Inline[0].ContentID != "logo@x" || m.Inline[0].ContentType != "image/png" || m.Inline[0].Size != 93 {
		t.Errorf("Inline %+v", m.Inline)
	}
	if len(m.Attachments) != 1 || m.Attachments[0].PartID != "2" || m.Attachments[0].FileName != "réport.pdf" || m.Attachments[0].Size != 9 {
		t.Errorf("Attachments %+v", m.Attachments)
	}
	if m.Envelope.ReversePath != "jorg@example.org" || strings.Join(m.Envelope.ForwardPaths, " ") != "bob@example.net carol@example.net" {
		t.Errorf("Envelope %+v", m.Envelope)
	}
	if len(m.Headers["Received"]) != 1 || !strings.Contains(m.Headers["Received"][0], "id "+id) || m.Headers["Subject"][0] != "Hello wörld rich" {
		t.Errorf("Headers %v", m.Headers)
	}
	if len(m.Errors) != 0 {
		t.Errorf("Errors %v for a well-formed message", m.Errors)
	}
	var latest messageJSON
	ti.getJSON("/api/v1/message/latest", &latest)
	if latest.ID != id {
		t.Errorf("latest is %q, want %q", latest.ID, id)
	}
	var h map[string][]string
	ti.getJSON("/api/v1/message/"+id+"/headers", &h)
	if h["Message-Id"][0] != "<rich@example.org>" {
		t.Errorf("headers: %v", h)
	}
	ti.get("/api/v1/message/nosuch", http.StatusNotFound)
	ti.get("/api/v1/message/nosuch/raw", http.StatusNotFound)
	ti.get("/api/v1/message/nosuch/session", http.StatusNotFound)
}

// GET /api/v1/message/{ID}/raw and /part/{PartID}: the message as
// stored; a part decoded, as an attachment, sandboxed, and as
// application/octet-stream unless its type is harmless.
func TestInboxAPIRawAndParts(t *testing.T) {
	ti := newTestInbox(t, nil)
	id := ti.send("jorg@example.org", []string{"bob@example.net"}, rich)
	resp, raw := ti.get("/api/v1/message/"+id+"/raw", http.StatusOK)
	if !strings.HasPrefix(raw, "Return-Path: <jorg@example.org>\r\nDelivered-To: <bob@example.net>\r\nReceived: ") ||
		!strings.HasSuffix(raw, strings.ReplaceAll(rich, "\n", "\r\n")) {
		t.Errorf("raw is not what the store got:\n%s", raw)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
		t.Errorf("raw Content-Type %q", ct)
	}
	resp, _ = ti.get("/api/v1/message/"+id+"/raw?dl=1", http.StatusOK)
	if cd := resp.Header.Get("Content-Disposition"); cd != "attachment; filename="+id+".eml" {
		t.Errorf("raw?dl=1 Content-Disposition %q", cd)
	}

	resp, pdf := ti.get("/api/v1/message/"+id+"/part/2", http.StatusOK)
	if pdf != "%PDF-1.4\n" {
		t.Errorf("part 2 is %q, want the attachment decoded", pdf)
	}
	for k, want := range map[string]string{
		"Content-Type":            "application/pdf",
		"Content-Disposition":     "attachment; filename*=utf-8''r%C3%A9port.pdf",
		"Content-Security-Policy": "default-src 'none'; sandbox",
		"X-Content-Type-Options":  "nosniff",
	} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("part 2 %s: %q, want %q", k, got, want)
		}
	}
	resp, _ = ti.get("/api/v1/message/"+id+"/part/1.1.2", http.StatusOK)
	if ct := resp.Header.Get("Content-Type"); ct != "application/octet-stream" {
		t.Errorf("an HTML part is served as %q, want application/octet-stream", ct)
	}
	resp, png := ti.get("/api/v1/message/"+id+"/part/1.2", http.StatusOK)
	if resp.Header.Get("Content-Type") != "image/png" || !strings.HasPrefix(png, "\x89PNG") {
		t.Errorf("inline image: %q, %q", resp.Header.Get("Content-Type"), png[:min(8, len(png))])
	}
	ti.get("/api/v1/message/"+id+"/part/9", http.StatusNotFound)
}

// GET /api/v1/message/{ID}/session: the commands and replies of the
// session, with states, rules, RFC sections and links into the state
// table, sizes of the content but never the content.
func TestInboxAPISession(t *testing.T) {
	ti := newTestInbox(t, nil)
	id := ti.send("alice@example.org", []string{"bob@example.net"}, plain("alice@example.org", "bob@example.net", "secret content XYZZY"))
	var s sessionJSON
	ti.getJSON("/api/v1/message/"+id+"/session", &s)
	var cmds []string
	anchors := map[string]bool{}
	for _, e := range s.Events {
		if strings.Contains(e.Text, "XYZZY") || strings.Contains(e.Err, "XYZZY") {
			t.Errorf("the session log holds message content: %+v", e)
		}
		if e.Kind == "command" {
			cmds = append(cmds, e.Verb+" "+e.State+">"+e.Next)
			if e.RFC == "" || !strings.HasPrefix(e.Link, "/state-table#") {
				t.Errorf("command without RFC section or link: %+v", e)
			}
			anchors[strings.TrimPrefix(e.Link, "/state-table#")] = true
		}
	}
	want := "EHLO connected>identified|MAIL identified>mail|RCPT mail>rcpt|DATA rcpt>identified|QUIT identified>"
	if strings.Join(cmds, "|") != want {
		t.Errorf("commands %q, want %q", strings.Join(cmds, "|"), want)
	}
	kinds := map[string]sessionEvent{}
	for _, e := range s.Events {
		kinds[e.Kind] = e
	}
	if c := kinds["content"]; c.Size == 0 || c.Message != id || c.Text != "" {
		t.Errorf("content event %+v: want its size only, marked with the message", c)
	}
	if d := kinds["delivered"]; d.Message != id || d.Size == 0 {
		t.Errorf("delivered event %+v", d)
	}
	if !s.Ended || s.Remote == "" || kinds["reply"].Code == 0 {
		t.Errorf("session: ended %v remote %q", s.Ended, s.Remote)
	}
	_, doc := ti.get("/state-table", http.StatusOK)
	for a := range anchors {
		if !strings.Contains(doc, `id="`+a+`"`) {
			t.Errorf("the state table has no row %q", a)
		}
	}
	if len(ti.in.sessions.pending) != 0 {
		t.Errorf("sessions still pending after the session ended: %v", ti.in.sessions.pending)
	}
}

// DELETE /api/v1/messages: the IDs given, or all; their sessions go.
func TestInboxAPIDelete(t *testing.T) {
	ti := newTestInbox(t, nil)
	a := ti.send("a@example.org", []string{"b@example.net"}, plain("a@example.org", "b@example.net", "a"))
	b := ti.send("a@example.org", []string{"b@example.net"}, plain("a@example.org", "b@example.net", "b"))
	c := ti.send("a@example.org", []string{"b@example.net"}, plain("a@example.org", "b@example.net", "c"))
	resp, body := ti.do("DELETE", "/api/v1/messages", strings.NewReader(`{"IDs": ["`+a+`", "`+c+`", "nosuch"]}`))
	if resp.StatusCode != http.StatusOK || body != "ok" {
		t.Fatalf("DELETE IDs: %s %q", resp.Status, body)
	}
	var l listJSON
	ti.getJSON("/api/v1/messages", &l)
	if l.Total != 1 || l.Messages[0].ID != b {
		t.Errorf("after deleting %s and %s: %+v", a, c, l)
	}
	ti.get("/api/v1/message/"+a+"/session", http.StatusNotFound)
	resp, _ = ti.do("DELETE", "/api/v1/messages", strings.NewReader(`{"IDs": 5}`))
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("DELETE with a bad body: %s, want 400", resp.Status)
	}
	resp, _ = ti.do("DELETE", "/api/v1/messages", nil)
	ti.getJSON("/api/v1/messages", &l)
	if resp.StatusCode != http.StatusOK || l.Total != 0 {
		t.Errorf("DELETE all: %s, %d left", resp.Status, l.Total)
	}
}

// GET /api/v1/events: a new message and a deletion arrive as events.
func TestInboxEvents(t *testing.T) {
	ti := newTestInbox(t, nil)
	resp, err := http.Get(ti.web.URL + "/api/v1/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("events Content-Type %q", ct)
	}
	r := bufio.NewReader(resp.Body)
	readEvent := func() (name, data string) {
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("reading the event stream: %v", err)
			}
			switch {
			case strings.HasPrefix(line, "event: "):
				name = strings.TrimSpace(line[len("event: "):])
			case strings.HasPrefix(line, "data: "):
				data = strings.TrimSpace(line[len("data: "):])
			case line == "\n" && name != "":
				return name, data
			}
		}
	}
	// The stream is open once its first line (retry:) arrived.
	if line, _ := r.ReadString('\n'); !strings.HasPrefix(line, "retry: ") {
		t.Fatalf("first line of the stream %q", line)
	}
	id := ti.send("a@example.org", []string{"b@example.net"}, plain("a@example.org", "b@example.net", "live"))
	name, data := readEvent()
	var ev inboxEvent
	json.Unmarshal([]byte(data), &ev)
	if name != "new" || ev.Message == nil || ev.Message.ID != id || ev.Message.Subject != "live" {
		t.Errorf("event %q %s, want new with message %s", name, data, id)
	}
	ti.do("DELETE", "/api/v1/messages", nil)
	name, data = readEvent()
	if name != "delete" || !strings.Contains(data, id) {
		t.Errorf("event %q %s, want delete of %s", name, data, id)
	}
}

// -http-keep: a memory inbox keeps the last N messages.
func TestInboxKeep(t *testing.T) {
	ti := newTestInbox(t, &config{httpKeep: 2})
	var ids []string
	for _, s := range []string{"one", "two", "three"} {
		ids = append(ids, ti.send("a@example.org", []string{"b@example.net"}, plain("a@example.org", "b@example.net", s)))
	}
	var l listJSON
	ti.getJSON("/api/v1/messages", &l)
	if l.Total != 2 || l.Messages[0].ID != ids[2] || l.Messages[1].ID != ids[1] {
		t.Errorf("with -http-keep 2 after three messages: %+v", l)
	}
	ti.get("/api/v1/message/"+ids[0], http.StatusNotFound)
	if ti.in.get(ids[0], false) != nil || ti.in.bytes <= 0 {
		t.Errorf("the evicted message is still indexed, or the byte count is off (%d)", ti.in.bytes)
	}
}
