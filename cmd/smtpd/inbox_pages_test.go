package main

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

// The pages: the list (escaped, paginated, searchable, with its live
// script), a message (fields decoded, the HTML part only in a sandboxed
// frame under its own policy), a session, the state table.
func TestInboxPages(t *testing.T) {
	ti := newTestInbox(t, nil)
	evil := ti.send("a@example.org", []string{"b@example.net"},
		plain(`"<b>Mallory</b>" <a@example.org>`, "b@example.net", `<script>alert(1)</script>`))
	id := ti.send("jorg@example.org", []string{"bob@example.net"}, rich)

	resp, list := ti.get("/", http.StatusOK)
	for _, want := range []string{`href="/message/` + id + `"`, "Hello wörld rich", "Jörg", `data-live="1"`,
		`<script src="/static/inbox.js"></script>`, "&lt;script&gt;alert(1)&lt;/script&gt;", "&lt;b&gt;Mallory&lt;/b&gt;"} {
		if !strings.Contains(list, want) {
			t.Errorf("the list lacks %q", want)
		}
	}
	if strings.Contains(list, "<script>alert") || strings.Contains(list, "<b>Mallory") {
		t.Errorf("the list shows a sender's markup unescaped:\n%s", list)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "frame-ancestors 'self'") {
		t.Errorf("the list's policy %q", csp)
	}
	_, found := ti.get("/?q=mallory", http.StatusOK)
	if !strings.Contains(found, evil) || strings.Contains(found, id) || !strings.Contains(found, `data-live="0"`) {
		t.Errorf("searching for mallory:\n%s", found)
	}

	_, page := ti.get("/message/"+id, http.StatusOK)
	for _, want := range []string{"Hello Jörg, plain text.", `<iframe sandbox src="/message/` + id + `/html"`,
		"réport.pdf", `href="/api/v1/message/` + id + `/part/2"`, `href="/message/` + id + `/session"`,
		"MAIL FROM:&lt;jorg@example.org&gt; RCPT TO:&lt;bob@example.net&gt;", `action="/message/` + id + `/delete"`} {
		if !strings.Contains(page, want) {
			t.Errorf("the message page lacks %q", want)
		}
	}
	if strings.Contains(page, "<h1 id=\"h\">") || strings.Contains(page, "SCRIPT RAN") {
		t.Errorf("the message page holds the HTML part itself:\n%s", page)
	}
	resp, html := ti.get("/message/"+id+"/html", http.StatusOK)
	csp := resp.Header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "sandbox", "img-src data: http://" + strings.TrimPrefix(ti.web.URL, "http://") + "/api/v1/message/" + id + "/part/"} {
		if !strings.Contains(csp, want) {
			t.Errorf("the HTML part's policy %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "script-src") || !strings.Contains(html, `<img src="/api/v1/message/`+id+`/part/1.2">`) {
		t.Errorf("the HTML part: policy %q, body %s", csp, html)
	}
	ti.get("/message/"+evil+"/html", http.StatusNotFound) // no HTML part

	_, sess := ti.get("/message/"+id+"/session", http.StatusOK)
	for _, want := range []string{"<code>EHLO localhost</code>", "<code>MAIL FROM:&lt;jorg@example.org&gt;", "rcpt → identified",
		`href="/state-table#rule-DATA-1"`, "<code>QUIT</code>", `class="content this"`} {
		if !strings.Contains(sess, want) {
			t.Errorf("the session page lacks %q", want)
		}
	}
	_, doc := ti.get("/state-table", http.StatusOK)
	for _, want := range []string{`<tr id="cmd-EHLO">`, `<tr id="rule-DATA-1">`, `<tr id="rule-DATA-2">`, `<tr id="guard-STARTTLS-1">`, "<code>503 5.5.1 Bad sequence of commands</code>"} {
		if !strings.Contains(doc, want) {
			t.Errorf("the state table lacks %q", want)
		}
	}
	resp, js := ti.get("/static/inbox.js", http.StatusOK)
	if !strings.Contains(resp.Header.Get("Content-Type"), "javascript") || !strings.Contains(js, "EventSource") {
		t.Errorf("inbox.js: %q", resp.Header.Get("Content-Type"))
	}
	ti.get("/static/inbox.css", http.StatusOK)
	ti.get("/message/nosuch", http.StatusNotFound)
	ti.get("/message/nosuch/session", http.StatusNotFound)
}

// The list pages by 50, newest first.
func TestInboxPagination(t *testing.T) {
	ti := newTestInbox(t, nil)
	for i := 1; i <= 60; i++ {
		ti.put(fmt.Sprintf("m%d", i), fmt.Sprintf("Subject: number %d\r\n\r\nx\r\n", i))
	}
	rows := regexp.MustCompile(`<tr data-id="m(\d+)"`)
	_, first := ti.get("/", http.StatusOK)
	got := rows.FindAllStringSubmatch(first, -1)
	if len(got) != 50 || got[0][1] != "60" || got[49][1] != "11" || !strings.Contains(first, `href="/?start=50"`) {
		t.Errorf("first page: %d rows from m%s; next link: %v", len(got), got[0][1], strings.Contains(first, "start=50"))
	}
	_, second := ti.get("/?start=50", http.StatusOK)
	got = rows.FindAllStringSubmatch(second, -1)
	if len(got) != 10 || got[0][1] != "10" || got[9][1] != "1" || !strings.Contains(second, `href="/"`) || !strings.Contains(second, `data-live="0"`) {
		t.Errorf("second page: %d rows", len(got))
	}
}

// The delete buttons: POST, from the inbox's own pages.
func TestInboxFormDelete(t *testing.T) {
	ti := newTestInbox(t, nil)
	ti.put("one", "Subject: one\r\n\r\nx\r\n")
	ti.put("two", "Subject: two\r\n\r\nx\r\n")
	resp, _ := ti.do("POST", "/message/one/delete", nil, "Origin", ti.web.URL, "Sec-Fetch-Site", "same-origin")
	if resp.StatusCode != http.StatusSeeOther || ti.in.get("one", false) != nil {
		t.Errorf("delete one: %s", resp.Status)
	}
	ti.get("/message/one/delete", http.StatusMethodNotAllowed)
	resp, _ = ti.do("POST", "/delete-all", nil, "Origin", ti.web.URL)
	if resp.StatusCode != http.StatusSeeOther || ti.in.get("two", false) != nil {
		t.Errorf("delete all: %s", resp.Status)
	}
}

// Requests that change the inbox are refused when a browser says they
// come from another site; requests without those headers (curl) are not.
func TestInboxSameOrigin(t *testing.T) {
	ti := newTestInbox(t, nil)
	for _, tc := range []struct {
		header []string
		want   int
	}{
		{[]string{"Origin", "http://evil.example"}, http.StatusForbidden},
		{[]string{"Origin", "null"}, http.StatusForbidden},
		{[]string{"Sec-Fetch-Site", "cross-site"}, http.StatusForbidden},
		{[]string{"Sec-Fetch-Site", "same-site", "Origin", "http://other.localhost"}, http.StatusForbidden},
		{[]string{"Origin", ti.web.URL, "Sec-Fetch-Site", "cross-site"}, http.StatusForbidden},
		{[]string{"Origin", ti.web.URL, "Sec-Fetch-Site", "same-origin"}, http.StatusOK},
		{nil, http.StatusOK}, // curl
	} {
		ti.put("x", "Subject: x\r\n\r\nx\r\n")
		resp, body := ti.do("DELETE", "/api/v1/messages", nil, tc.header...)
		kept := ti.in.get("x", false) != nil
		if resp.StatusCode != tc.want || kept != (tc.want != http.StatusOK) {
			t.Errorf("DELETE with %v: %s %q, message kept %v", tc.header, resp.Status, body, kept)
		}
		resp, _ = ti.do("POST", "/delete-all", nil, tc.header...)
		if tc.want == http.StatusForbidden && resp.StatusCode != http.StatusForbidden {
			t.Errorf("POST /delete-all with %v: %s", tc.header, resp.Status)
		}
	}
	// Reading is not refused: a page of another site cannot read the
	// answer anyway (no CORS), and links must work.
	if resp, _ := ti.do("GET", "/", nil, "Sec-Fetch-Site", "cross-site"); resp.StatusCode != http.StatusOK {
		t.Errorf("GET / from a link on another site: %s", resp.Status)
	}
}

// Bound to loopback, the inbox answers only to loopback's names, so that
// a DNS name pointed at 127.0.0.1 by a web page cannot read it.
func TestInboxHostCheck(t *testing.T) {
	ti := newTestInbox(t, nil)
	for host, want := range map[string]int{
		"127.0.0.1:8025":   http.StatusOK,
		"localhost:8025":   http.StatusOK,
		"[::1]:8025":       http.StatusOK,
		"evil.example":     http.StatusMisdirectedRequest,
		"evil.example:123": http.StatusMisdirectedRequest,
	} {
		req := httptest.NewRequest("GET", "/api/v1/messages", nil)
		req.Host = host
		w := httptest.NewRecorder()
		ti.ws.ServeHTTP(w, req)
		if w.Code != want {
			t.Errorf("Host %s: %d, want %d", host, w.Code, want)
		}
	}
}

// -http-auth: HTTP Basic authentication for every request, any Host.
func TestInboxBasicAuth(t *testing.T) {
	in, err := newInbox(&config{httpKeep: 10}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ws := newWebServer(in, slog.New(slog.NewTextHandler(io.Discard, nil)), passwords{"alice": "s3cret"}, "")
	for _, tc := range []struct {
		user, password string
		set            bool
		want           int
	}{
		{"", "", false, http.StatusUnauthorized},
		{"alice", "wrong", true, http.StatusUnauthorized},
		{"bob", "s3cret", true, http.StatusUnauthorized},
		{"alice", "s3cret", true, http.StatusOK},
	} {
		req := httptest.NewRequest("GET", "/api/v1/messages", nil)
		req.Host = "mail.example.org:8025"
		if tc.set {
			req.SetBasicAuth(tc.user, tc.password)
		}
		w := httptest.NewRecorder()
		ws.ServeHTTP(w, req)
		if w.Code != tc.want {
			t.Errorf("%s:%s: %d, want %d", tc.user, tc.password, w.Code, tc.want)
		}
		if w.Code == http.StatusUnauthorized && !strings.HasPrefix(w.Header().Get("WWW-Authenticate"), `Basic realm=`) {
			t.Errorf("401 without a Basic challenge: %q", w.Header().Get("WWW-Authenticate"))
		}
	}
}

// A handler's panic is a 500 for that request, and the inbox goes on.
func TestInboxRecoversPanic(t *testing.T) {
	ti := newTestInbox(t, nil)
	ti.ws.mux.HandleFunc("GET /panic", func(http.ResponseWriter, *http.Request) { panic("boom") })
	ti.get("/panic", http.StatusInternalServerError)
	ti.get("/", http.StatusOK)
}
