package main

import (
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"net/textproto"
	"strconv"
	"time"
)

// The JSON API, on mailpit's paths and with its field names where the
// data is the same (https://mailpit.axllent.org/docs/api-v1/), so that a
// script written for mailpit checks this sink too.

// summaryJSON is a message in a list (mailpit's MessageSummary).
type summaryJSON struct {
	ID          string
	MessageID   string
	Read        bool
	From        address
	To          []address
	Cc          []address
	Subject     string
	Date        time.Time // the Date field, or Created when it has none
	Created     time.Time // when the store got it
	Size        int64
	Attachments int
	Problem     string `json:",omitempty"` // what is wrong with its MIME structure
}

// summarize returns e's summary; the caller holds the inbox's lock.
func summarize(e *entry) *summaryJSON {
	s := &summaryJSON{ID: e.ID, MessageID: e.MessageID, Read: e.read, From: e.From,
		To: nonNil(e.To), Cc: nonNil(e.Cc), Subject: e.Subject, Date: e.Date, Created: e.Created,
		Size: e.Size, Attachments: e.Attachments, Problem: e.Problem}
	if s.Date.IsZero() {
		s.Date = e.Created
	}
	return s
}

// nonNil makes an empty list [] in JSON rather than null.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// listJSON is GET /api/v1/messages (mailpit's MessagesSummary).
type listJSON struct {
	Total         int            `json:"total"`          // messages in the inbox
	Unread        int            `json:"unread"`         // of them, never shown
	Count         int            `json:"count"`          // messages in this answer
	MessagesCount int            `json:"messages_count"` // messages that match the query
	Start         int            `json:"start"`
	Messages      []*summaryJSON `json:"messages"`
}

// defaultLimit is a page's length, as mailpit's.
const defaultLimit = 50

// apiList is GET /api/v1/messages and mailpit's GET /api/v1/search:
// ?query= (words that must all match an address or the subject; from:,
// to: and subject: narrow one to a field), ?start=, ?limit=.
func (ws *webServer) apiList(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	start, err1 := intParam(q.Get("start"), 0)
	limit, err2 := intParam(q.Get("limit"), defaultLimit)
	if err := errors.Join(err1, err2); err != nil {
		http.Error(w, "start and limit: "+err.Error(), http.StatusBadRequest)
		return
	}
	page, matched, total, unread := ws.inbox.list(q.Get("query"), start, limit)
	writeJSON(w, listJSON{Total: total, Unread: unread, Count: len(page), MessagesCount: matched, Start: start, Messages: nonNil(page)})
}

// intParam reads a query parameter that must be a number, 0 or more; def
// when it is empty.
func intParam(s string, def int) (int, error) {
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, errors.New("want a number, 0 or more")
	}
	return n, nil
}

// messageJSON is GET /api/v1/message/{ID} (mailpit's Message), with the
// envelope and what was wrong with the message besides.
type messageJSON struct {
	summaryJSON
	ReplyTo     []address
	Bcc         []address
	ReturnPath  string
	Text        string
	HTML        string
	Inline      []attachmentJSON
	Attachments []attachmentJSON
	Headers     map[string][]string
	Envelope    envelopeJSON
	Errors      []string
}

// envelopeJSON is a message's envelope (RFC 5321 3.3), as the store
// recorded it in Return-Path and Delivered-To.
type envelopeJSON struct {
	ReversePath  string
	ForwardPaths []string
}

func (ws *webServer) apiMessage(w http.ResponseWriter, r *http.Request) {
	e, v := ws.viewOf(w, r, true)
	if v == nil {
		return
	}
	ws.inbox.mu.RLock()
	sum := summarize(e)
	ws.inbox.mu.RUnlock()
	writeJSON(w, messageJSON{summaryJSON: *sum, ReplyTo: nonNil(v.ReplyTo), Bcc: nonNil(v.Bcc),
		ReturnPath: e.ReversePath, Text: v.Text, HTML: v.HTML,
		Inline: nonNil(v.Inline), Attachments: nonNil(v.Attachments), Headers: headerMap(v.Header),
		Envelope: envelopeJSON{ReversePath: e.ReversePath, ForwardPaths: nonNil(e.ForwardPaths)},
		Errors:   nonNil(v.Errors)})
}

// entryOf returns the message of the request's {id}, or answers 404 and
// returns nil.
func (ws *webServer) entryOf(w http.ResponseWriter, r *http.Request, markRead bool) *entry {
	e := ws.inbox.get(r.PathValue("id"), markRead)
	if e == nil {
		http.Error(w, "no message "+r.PathValue("id"), http.StatusNotFound)
	}
	return e
}

// rawOf returns the message of the request's {id} as the store holds it,
// or answers 404 or 500 and returns nil.
func (ws *webServer) rawOf(w http.ResponseWriter, r *http.Request, markRead bool) (*entry, []byte) {
	e := ws.entryOf(w, r, markRead)
	if e == nil {
		return nil, nil
	}
	raw, err := ws.inbox.raw(e)
	if err != nil {
		ws.storeError(w, err)
		return nil, nil
	}
	return e, raw
}

// viewOf returns the message of the request's {id} and its view, or
// answers 404 or 500 and returns a nil view.
func (ws *webServer) viewOf(w http.ResponseWriter, r *http.Request, markRead bool) (*entry, *messageView) {
	e, raw := ws.rawOf(w, r, markRead)
	if e == nil {
		return nil, nil
	}
	return e, ws.inbox.decode(e, raw)
}

// storeError answers a request whose message the store could not read.
func (ws *webServer) storeError(w http.ResponseWriter, err error) {
	if errors.Is(err, fs.ErrNotExist) {
		http.Error(w, "the message is no longer in the store: "+err.Error(), http.StatusNotFound)
		return
	}
	ws.log.Error("inbox: reading a message", "error", err)
	http.Error(w, "reading the message failed: "+err.Error(), http.StatusInternalServerError)
}

// headerMap is mailpit's form of a header: values by field name.
func headerMap(h header) map[string][]string {
	m := map[string][]string{}
	for _, f := range h {
		k := textproto.CanonicalMIMEHeaderKey(f.Name)
		m[k] = append(m[k], f.Value)
	}
	return m
}

func (ws *webServer) apiHeaders(w http.ResponseWriter, r *http.Request) {
	if _, v := ws.viewOf(w, r, false); v != nil {
		writeJSON(w, headerMap(v.Header))
	}
}

// apiRaw is the message as the store holds it; ?dl=1 downloads it.
func (ws *webServer) apiRaw(w http.ResponseWriter, r *http.Request) {
	e, raw := ws.rawOf(w, r, false)
	if e == nil {
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Content-Security-Policy", "default-src 'none'; sandbox")
	if r.URL.Query().Get("dl") != "" {
		h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": e.ID + ".eml"}))
	}
	w.Write(raw)
}

// apiPart serves a part (an attachment, an inline image) decoded, always
// as an attachment and sandboxed: a part of type text/html or image/svg+xml
// opened in the browser must not run as a page of the inbox. Its declared
// type is kept only when it is one a browser shows without running it.
func (ws *webServer) apiPart(w http.ResponseWriter, r *http.Request) {
	e, raw := ws.rawOf(w, r, false)
	if e == nil {
		return
	}
	p := parseMIME(raw).part(r.PathValue("part"))
	if p == nil {
		http.Error(w, "no part "+r.PathValue("part")+" in message "+e.ID, http.StatusNotFound)
		return
	}
	b, err := p.decode()
	if err != nil {
		http.Error(w, "part "+p.ID+" cannot be decoded: "+err.Error(), http.StatusUnprocessableEntity)
		return
	}
	name := p.FileName
	if name == "" {
		name = "part-" + p.ID
	}
	h := w.Header()
	h.Set("Content-Type", safePartType(p))
	h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": name}))
	h.Set("Content-Security-Policy", "default-src 'none'; sandbox")
	w.Write(b)
}

// safeTypes are the types a part is served as: shown by a browser, never
// run. Any other is served as application/octet-stream.
var safeTypes = map[string]bool{
	"image/png": true, "image/jpeg": true, "image/gif": true, "image/webp": true, "image/bmp": true,
	"image/avif": true, "application/pdf": true, "text/plain": true, "text/csv": true,
}

func safePartType(p *mimePart) string {
	if !safeTypes[p.MediaType] {
		return "application/octet-stream"
	}
	if p.MediaType == "text/plain" || p.MediaType == "text/csv" {
		if cs := p.Params["charset"]; cs != "" {
			return mime.FormatMediaType(p.MediaType, map[string]string{"charset": cs})
		}
	}
	return p.MediaType
}

// apiSession is the session that delivered the message: its events, each
// command's with a link to the state table's row that decided it.
func (ws *webServer) apiSession(w http.ResponseWriter, r *http.Request) {
	e := ws.entryOf(w, r, false)
	switch {
	case e == nil:
	case e.session == nil:
		http.Error(w, "no session is known for message "+e.ID+": it was stored before this process started", http.StatusNotFound)
	default:
		s := e.session.snapshot()
		for i := range s.Events {
			s.Events[i].Link = stateTableLink(s.Events[i])
		}
		writeJSON(w, s)
	}
}

// apiDelete is DELETE /api/v1/messages: the messages of {"IDs": [...]},
// or all of them when the body names none (as mailpit).
func (ws *webServer) apiDelete(w http.ResponseWriter, r *http.Request) {
	var body struct{ IDs []string }
	data, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err == nil && len(data) > 0 {
		err = json.Unmarshal(data, &body)
	}
	if err != nil {
		http.Error(w, `want {"IDs": ["ID", ...]}: `+err.Error(), http.StatusBadRequest)
		return
	}
	ids := body.IDs
	if len(ids) == 0 {
		ids = nil // all
	}
	if _, err := ws.inbox.remove(ids); err != nil {
		ws.log.Error("inbox: deleting", "error", err)
		http.Error(w, "deleting failed: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	io.WriteString(w, "ok")
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}
