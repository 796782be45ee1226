package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"
)

// Live updates: the list page listens to GET /api/v1/events, a stream of
// Server-Sent Events (the HTML Standard's EventSource), and adds the rows
// of new messages as they arrive. An event's name is its Type, its data
// the JSON of the message summary or of the IDs deleted.

// inboxEvent is one event of the stream.
type inboxEvent struct {
	Type    string       `json:"-"` // "new" or "delete"
	Message *summaryJSON `json:",omitempty"`
	IDs     []string     `json:",omitempty"`
}

// eventBuffer is how many events a listener may be behind; one that falls
// further behind is cut off, and its EventSource reconnects (the page
// then reloads, so that it misses nothing).
const eventBuffer = 64

// eventHub hands each event to every listener.
type eventHub struct {
	mu   sync.Mutex
	subs map[chan inboxEvent]bool
	done chan struct{} // closed when the web server shuts down
	shut bool
}

func newEventHub() *eventHub {
	return &eventHub{subs: map[chan inboxEvent]bool{}, done: make(chan struct{})}
}

// subscribe returns a new listener's channel, and the function that
// removes it.
func (h *eventHub) subscribe() (<-chan inboxEvent, func()) {
	ch := make(chan inboxEvent, eventBuffer)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.subs[ch] = true
	return ch, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.subs[ch] {
			delete(h.subs, ch)
			close(ch)
		}
	}
}

// publish hands ev to every listener without waiting: the deliverer calls
// it before the client gets its 250, and a slow browser must not hold that
// up.
func (h *eventHub) publish(ev inboxEvent) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.subs {
		select {
		case ch <- ev:
		default:
			delete(h.subs, ch)
			close(ch)
		}
	}
}

// close ends every stream, once each has written the events it holds:
// http.Server.Shutdown waits for handlers, and a stream would never end.
func (h *eventHub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.shut {
		h.shut = true
		close(h.done)
	}
}

// pingInterval keeps an idle stream from being cut by a proxy.
const pingInterval = 30 * time.Second

// serveEvents is GET /api/v1/events.
func (ws *webServer) serveEvents(w http.ResponseWriter, r *http.Request) {
	flusher, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming not supported", http.StatusInternalServerError)
		return
	}
	ch, cancel := ws.inbox.events.subscribe()
	defer cancel()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	fmt.Fprint(w, "retry: 2000\n\n")
	flusher.Flush()
	ws.log.Debug("inbox: event stream opened", "remote", r.RemoteAddr)
	ping := time.NewTicker(pingInterval)
	defer ping.Stop()
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				return
			}
			writeEvent(w, ev)
		case <-ping.C:
			fmt.Fprint(w, ": ping\n\n")
		case <-r.Context().Done():
			return
		case <-ws.inbox.events.done:
			for {
				select {
				case ev, ok := <-ch:
					if ok {
						writeEvent(w, ev)
						continue
					}
				default:
				}
				flusher.Flush()
				return
			}
		}
		flusher.Flush()
	}
}

// writeEvent writes one event in the text/event-stream format: JSON has
// no line breaks, so it is one data line.
func writeEvent(w http.ResponseWriter, ev inboxEvent) {
	data, _ := json.Marshal(ev)
	fmt.Fprintf(w, "event: %s\ndata: %s\n\n", ev.Type, data)
}
