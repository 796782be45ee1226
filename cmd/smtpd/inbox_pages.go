package main

import (
	"bytes"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// The inbox's pages, rendered by html/template from inbox/*.html: the
// list, a message, the session that delivered it, and the state table.

// maxShownText is how much of a message's text the page shows; the API
// and the raw source have all of it.
const maxShownText = 1 << 20

var templateFuncs = template.FuncMap{
	"size":  sizeText,
	"when":  func(t time.Time) string { return t.Format("2006-01-02 15:04:05 -0700") },
	"short": func(t time.Time) string { return t.Format("2006-01-02 15:04") },
	"addrs": func(as []address) string {
		s := make([]string, len(as))
		for i, a := range as {
			s[i] = a.String()
		}
		return strings.Join(s, ", ")
	},
	"partURL": partURL,
	"ms":      func(f float64) string { return fmt.Sprintf("%.3f", f) },
	"link":    stateTableLink,
}

// sizeText is a size as a person reads it.
func sizeText(n int64) string {
	switch {
	case n < 1024:
		return fmt.Sprintf("%d B", n)
	case n < 1024*1024:
		return fmt.Sprintf("%.1f kB", float64(n)/1024)
	}
	return fmt.Sprintf("%.1f MB", float64(n)/(1024*1024))
}

// render executes a page's template into a buffer first, so that a
// failure gives a clean 500 instead of half a page.
func (ws *webServer) render(w http.ResponseWriter, status int, name string, data any) {
	var b bytes.Buffer
	if err := ws.pages.ExecuteTemplate(&b, name, data); err != nil {
		ws.log.Error("inbox: rendering a page", "page", name, "error", err)
		http.Error(w, "rendering the page failed (logged)", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(b.Bytes())
}

// pageError shows a page that says what went wrong.
func (ws *webServer) pageError(w http.ResponseWriter, status int, msg string) {
	ws.render(w, status, "error.html", struct{ Title, Message string }{http.StatusText(status), msg})
}

// listPage is the data of the list.
type listPage struct {
	Title                  string
	Query                  string
	Messages               []*summaryJSON
	Matched, Total, Unread int
	First, Last            int // the rows shown, counted from 1
	PrevURL, NextURL       string
	Live                   bool // new messages are added at the top: first page, no search
}

// pageList is GET /: ?q= searches, ?start= pages.
func (ws *webServer) pageList(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query().Get("q")
	start, err := intParam(r.URL.Query().Get("start"), 0)
	if err != nil {
		ws.pageError(w, http.StatusBadRequest, "start: "+err.Error())
		return
	}
	page, matched, total, unread := ws.inbox.list(q, start, defaultLimit)
	p := listPage{Title: "Inbox", Query: q, Messages: page, Matched: matched, Total: total,
		Unread: unread, Live: start == 0 && q == "", First: start + 1, Last: start + len(page)}
	if start > 0 {
		p.PrevURL = listURL(q, max(0, start-defaultLimit))
	}
	if start+len(page) < matched {
		p.NextURL = listURL(q, start+defaultLimit)
	}
	ws.render(w, http.StatusOK, "list.html", p)
}

func listURL(q string, start int) string {
	v := url.Values{}
	if q != "" {
		v.Set("q", q)
	}
	if start > 0 {
		v.Set("start", fmt.Sprint(start))
	}
	if len(v) == 0 {
		return "/"
	}
	return "/?" + v.Encode()
}

// messagePage is the data of a message's page.
type messagePage struct {
	Title   string
	M       *messageView
	Text    string
	TextCut bool
	Session bool
}

// pageEntry returns the message of the request's {id}, or shows a page
// that says there is none and returns nil.
func (ws *webServer) pageEntry(w http.ResponseWriter, r *http.Request, markRead bool) *entry {
	e := ws.inbox.get(r.PathValue("id"), markRead)
	if e == nil {
		ws.pageError(w, http.StatusNotFound, "There is no message "+r.PathValue("id")+" (deleted?).")
	}
	return e
}

// pageMessage is GET /message/{id}.
func (ws *webServer) pageMessage(w http.ResponseWriter, r *http.Request) {
	e := ws.pageEntry(w, r, true)
	if e == nil {
		return
	}
	v, err := ws.inbox.view(e)
	if err != nil {
		ws.pageError(w, http.StatusNotFound, "The message cannot be read from the store: "+err.Error())
		return
	}
	p := messagePage{Title: e.Subject, M: v, Text: v.Text, Session: e.session != nil}
	if len(p.Text) > maxShownText {
		p.Text, p.TextCut = strings.ToValidUTF8(p.Text[:maxShownText], ""), true
	}
	if p.Title == "" {
		p.Title = "(no subject)"
	}
	ws.render(w, http.StatusOK, "message.html", p)
}

// serveHTML is GET /message/{id}/html: the message's HTML part as a
// document of its own, which the message page shows in an <iframe
// sandbox>. Its policy lets it run no script (sandbox without
// allow-scripts, default-src 'none'), send no form, and load nothing but
// images inline in it (data:) or in the message's own parts, whose cid:
// URLs point there: a tracking pixel on another server is never fetched.
func (ws *webServer) serveHTML(w http.ResponseWriter, r *http.Request) {
	e, v := ws.viewOf(w, r, false)
	if v == nil {
		return
	}
	if v.HTML == "" {
		http.Error(w, "message "+e.ID+" has no HTML part", http.StatusNotFound)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", htmlCSP(r.Host, e.ID))
	h.Set("Cache-Control", "no-store")
	w.Write([]byte(v.HTML))
}

// htmlCSP is the policy of a message's HTML part: images only from the
// message's own parts on this host, or data: URLs; inline style, which
// loads nothing the policy does not allow; no script, no frame, no form.
func htmlCSP(host, id string) string {
	parts := "'self'"
	if isPlainHost(host) {
		parts = "http://" + host + "/api/v1/message/" + url.PathEscape(id) + "/part/"
	}
	return "default-src 'none'; img-src data: " + parts + "; style-src 'unsafe-inline'; font-src data:; " +
		"base-uri 'none'; form-action 'none'; frame-ancestors 'self'; sandbox"
}

// isPlainHost reports whether a Host header is made of the characters of
// a name or an address only, fit to write into a policy.
func isPlainHost(host string) bool {
	for _, c := range []byte(host) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte(".-:[]", c) >= 0) {
			return false
		}
	}
	return host != ""
}

// sessionPage is the data of a session's page.
type sessionPage struct {
	Title   string
	M       *entry
	S       sessionJSON
	Known   bool
	Started string
}

// pageSession is GET /message/{id}/session.
func (ws *webServer) pageSession(w http.ResponseWriter, r *http.Request) {
	e := ws.pageEntry(w, r, false)
	if e == nil {
		return
	}
	p := sessionPage{Title: "Session of " + e.ID, M: e, Known: e.session != nil}
	if p.Known {
		p.S = e.session.snapshot()
		p.Started = p.S.Start.Format("2006-01-02 15:04:05.000 -0700")
	}
	ws.render(w, http.StatusOK, "session.html", p)
}

// formDelete is the message page's delete button.
func (ws *webServer) formDelete(w http.ResponseWriter, r *http.Request) {
	if _, err := ws.inbox.remove([]string{r.PathValue("id")}); err != nil {
		ws.pageError(w, http.StatusInternalServerError, "Deleting failed: "+err.Error())
		return
	}
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// formDeleteAll is the list's delete-all button.
func (ws *webServer) formDeleteAll(w http.ResponseWriter, r *http.Request) {
	if _, err := ws.inbox.remove(nil); err != nil {
		ws.pageError(w, http.StatusInternalServerError, "Deleting failed: "+err.Error())
		return
	}
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// pageStateTable is GET /state-table.
func (ws *webServer) pageStateTable(w http.ResponseWriter, r *http.Request) {
	ws.render(w, http.StatusOK, "state-table.html", struct {
		Title string
		Doc   *stateDoc
	}{"State table", theStateDoc()})
}
