package main

import (
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"smtpd/smtpd"
)

// The inbox (-http) is an index of the messages the store holds, kept in
// memory so that the list of 10,000 messages is a slice of it, not a read
// of 10,000 files: each message's header is read once, when it is indexed
// (at start, from what the store holds; then as the deliverer stores each
// message). The message itself is read from the store when it is shown.
// A Maildir or an mbox is read back; for the other stores (standard
// output, -exec, -discard) the inbox keeps the last -http-keep messages in
// memory itself.

// entry is one message of the index: what the list shows and searches.
// Its fields do not change once it is indexed, but for read.
type entry struct {
	ID           string
	MessageID    string
	From         address
	To, Cc       []address
	Subject      string
	Date         time.Time // the Date field; zero when missing or unreadable
	Created      time.Time // when the store got it
	Size         int64
	Attachments  int
	ReversePath  string   // the envelope, from the Return-Path field the store wrote
	ForwardPaths []string // and its Delivered-To fields
	Problem      string   // the first thing wrong with its MIME structure, "" if none

	read    bool // shown once; guarded by inbox.mu
	loc     location
	session *sessionLog // the session that delivered it; nil when not known
	// What ?query= looks in, lower case.
	searchFrom, searchTo, searchSubject string
}

// location is where a source holds a message.
type location struct {
	name   string // Maildir: the file, relative to the Maildir ("new/NAME")
	off, n int64  // mbox: the entry's offset and length, From line included
	data   []byte // memory: the message
}

// inbox is the index and the source it reads.
type inbox struct {
	src       source
	keep      int   // most messages held in memory, for a memory source
	keepBytes int64 // most octets held in memory, for a memory source
	viewMax   int   // the largest message decoded to be shown
	log       *slog.Logger
	events    *eventHub
	sessions  *sessions

	mu    sync.RWMutex
	byID  map[string]*entry
	order []*entry // oldest first
	bytes int64    // octets of the messages held in memory
}

// memoryKeepBytes bounds what a memory inbox holds besides -http-keep:
// a thousand messages of -max-size each would not fit most machines.
const memoryKeepBytes = 256 << 20

// newInbox returns the inbox of the store cfg names, its index read from
// what the store holds.
func newInbox(cfg *config, log *slog.Logger) (*inbox, error) {
	in := &inbox{keep: cfg.httpKeep, keepBytes: memoryKeepBytes, viewMax: maxViewSize, log: log, events: newEventHub(),
		sessions: newSessions(), byID: map[string]*entry{}}
	switch {
	case cfg.maildir != "":
		in.src = &maildirSource{dir: cfg.maildir}
	case cfg.mbox != "":
		in.src = &mboxSource{path: cfg.mbox}
	default:
		in.src = memorySource{}
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if err := in.src.scan(in.add); err != nil {
		return nil, err
	}
	return in, nil
}

// stored is the deliverer's hook: the store has accepted the message of
// env, and returned where; content is the message when the source keeps it
// in memory (wantsContent), nil otherwise.
func (in *inbox) stored(env *smtpd.Envelope, where string, content []byte) {
	in.mu.Lock()
	before := len(in.order)
	err := in.src.stored(env.ID, where, content, in.add)
	var added []*summaryJSON
	for _, e := range in.order[min(before, len(in.order)):] {
		added = append(added, summarize(e))
	}
	evicted := in.evict()
	in.mu.Unlock()
	if err != nil {
		in.log.Error("inbox: reading back a stored message", "id", env.ID, "where", where, "error", err)
	}
	if len(evicted) > 0 {
		in.events.publish(inboxEvent{Type: "delete", IDs: evicted})
	}
	for _, sum := range added {
		in.events.publish(inboxEvent{Type: "new", Message: sum})
	}
}

// wantsContent reports whether the deliverer must hand stored the message.
func (in *inbox) wantsContent() bool {
	_, ok := in.src.(memorySource)
	return ok
}

// add indexes the message raw, which the source holds at loc; id is its
// ID when the caller knows it (the Envelope's), "" to read it from the
// Received field. Called with mu held.
func (in *inbox) add(raw []byte, id string, created time.Time, loc location) {
	e := indexMessage(raw, created)
	e.loc = loc
	if id == "" {
		id = receivedID(parseHeaderOnly(raw))
	}
	if id == "" || in.byID[id] != nil {
		// Not one of ours, or seen twice: a name made from where it is.
		sum := sha256.Sum256([]byte(loc.name + "\x00" + string(raw[:min(len(raw), 4096)]) + created.String()))
		id = "x" + hex.EncodeToString(sum[:8])
	}
	e.ID = id
	e.session = in.sessions.lookup(id)
	in.byID[id] = e
	in.order = append(in.order, e)
	if loc.data != nil {
		in.bytes += int64(len(loc.data))
	}
}

// evict drops the oldest messages of a memory source past its bounds, and
// returns their IDs. Called with mu held.
func (in *inbox) evict() []string {
	if !in.wantsContent() {
		return nil
	}
	var ids []string
	for len(in.order) > 1 && (len(in.order) > in.keep || in.bytes > in.keepBytes) {
		e := in.order[0]
		in.order = in.order[1:]
		delete(in.byID, e.ID)
		in.bytes -= int64(len(e.loc.data))
		ids = append(ids, e.ID)
	}
	return ids
}

// indexMessage reads what the list needs from a message: its header
// fields, and its MIME structure for the attachment count.
func indexMessage(raw []byte, created time.Time) *entry {
	m := parseMIME(raw)
	h := m.Header
	e := &entry{
		MessageID:   strings.Trim(strings.TrimSpace(h.get("Message-ID")), "<>"),
		To:          parseAddresses(strings.Join(h.values("To"), ", ")),
		Cc:          parseAddresses(strings.Join(h.values("Cc"), ", ")),
		Subject:     decodeText(h.get("Subject")),
		Date:        parseDate(h.get("Date")),
		Created:     created,
		Size:        int64(len(raw)),
		Attachments: m.attachmentCount(),
		ReversePath: strings.Trim(strings.TrimSpace(h.get("Return-Path")), "<>"),
	}
	if from := parseAddresses(h.get("From")); len(from) > 0 {
		e.From = from[0]
	}
	for _, d := range h.values("Delivered-To") {
		e.ForwardPaths = append(e.ForwardPaths, strings.Trim(strings.TrimSpace(d), "<>"))
	}
	if len(m.Errors) > 0 {
		e.Problem = m.Errors[0]
	}
	e.searchFrom = strings.ToLower(e.From.String() + " " + e.ReversePath)
	var to []string
	for _, a := range append(slices.Clone(e.To), e.Cc...) {
		to = append(to, a.String())
	}
	e.searchTo = strings.ToLower(strings.Join(append(to, e.ForwardPaths...), " "))
	e.searchSubject = strings.ToLower(e.Subject)
	return e
}

// parseHeaderOnly reads the header section of raw, errors ignored.
func parseHeaderOnly(raw []byte) header {
	head, _ := splitHeader(raw)
	h, _ := parseHeader(head)
	return h
}

// receivedID returns the ID in the first Received field, which is this
// program's: "by HOST with ESMTP id ID" (RFC 5321 4.4; the library writes
// the Envelope's ID there). It is kept only when it is a plain token, fit
// for a URL; "" otherwise.
func receivedID(h header) string {
	rcvd, _, _ := strings.Cut(h.get("Received"), ";")
	f := strings.Fields(rcvd)
	for i := 0; i+1 < len(f); i++ {
		if strings.EqualFold(f[i], "id") && isToken(f[i+1]) {
			return f[i+1]
		}
	}
	return ""
}

// isToken reports whether s is 1 to 64 letters and digits.
func isToken(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range []byte(s) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// list returns the page of the messages that match query, newest first,
// from start, at most limit; matched is how many match, total how many
// there are, unread how many of them were never shown.
func (in *inbox) list(query string, start, limit int) (page []*summaryJSON, matched, total, unread int) {
	terms := parseQuery(query)
	in.mu.RLock()
	defer in.mu.RUnlock()
	for i := len(in.order) - 1; i >= 0; i-- {
		e := in.order[i]
		if !e.read {
			unread++
		}
		if !e.matches(terms) {
			continue
		}
		if matched >= start && len(page) < limit {
			page = append(page, summarize(e))
		}
		matched++
	}
	return page, matched, len(in.order), unread
}

// queryTerm is one word of a search: in "from:alice" field is "from".
type queryTerm struct{ field, text string }

// parseQuery splits a search into its words; each must match (mailpit's
// from:, to: and subject: prefixes narrow a word to a field).
func parseQuery(q string) []queryTerm {
	var terms []queryTerm
	for _, w := range strings.Fields(strings.ToLower(q)) {
		t := queryTerm{text: w}
		if f, rest, ok := strings.Cut(w, ":"); ok && rest != "" && (f == "from" || f == "to" || f == "subject") {
			t = queryTerm{field: f, text: rest}
		}
		terms = append(terms, t)
	}
	return terms
}

func (e *entry) matches(terms []queryTerm) bool {
	for _, t := range terms {
		var ok bool
		switch t.field {
		case "from":
			ok = strings.Contains(e.searchFrom, t.text)
		case "to":
			ok = strings.Contains(e.searchTo, t.text)
		case "subject":
			ok = strings.Contains(e.searchSubject, t.text)
		default:
			ok = strings.Contains(e.searchFrom, t.text) || strings.Contains(e.searchTo, t.text) ||
				strings.Contains(e.searchSubject, t.text)
		}
		if !ok {
			return false
		}
	}
	return true
}

// get returns the message with id ("latest": the newest, as in mailpit),
// nil when there is none; markRead marks it shown.
func (in *inbox) get(id string, markRead bool) *entry {
	in.mu.Lock()
	defer in.mu.Unlock()
	e := in.byID[id]
	if id == "latest" && len(in.order) > 0 {
		e = in.order[len(in.order)-1]
	}
	if e != nil && markRead {
		e.read = true
	}
	return e
}

// raw returns the message e as the store holds it.
func (in *inbox) raw(e *entry) ([]byte, error) {
	in.mu.RLock()
	defer in.mu.RUnlock()
	return in.src.read(e.loc)
}

// remove deletes the messages of ids from the store and the index (all of
// them when ids is nil), and returns the IDs deleted. Their session logs
// go with them, unless another message of the session is kept.
func (in *inbox) remove(ids []string) ([]string, error) {
	in.mu.Lock()
	var gone []*entry
	if ids == nil {
		gone = slices.Clone(in.order)
	}
	seen := map[string]bool{}
	for _, id := range ids {
		if e := in.byID[id]; e != nil && !seen[id] {
			seen[id] = true
			gone = append(gone, e)
		}
	}
	done, err := in.src.remove(gone, in.order)
	var removed []string
	for _, e := range done {
		delete(in.byID, e.ID)
		in.bytes -= int64(len(e.loc.data))
		removed = append(removed, e.ID)
	}
	in.order = slices.DeleteFunc(in.order, func(e *entry) bool { return in.byID[e.ID] != e })
	in.mu.Unlock()
	if len(removed) > 0 {
		in.events.publish(inboxEvent{Type: "delete", IDs: removed})
	}
	return removed, err
}
