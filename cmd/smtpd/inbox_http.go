package main

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"runtime/debug"
	"strings"
	"time"
)

// The web inbox's HTTP side: the routes, and what every request passes
// through first. The pages and the API are in inbox_pages.go and
// inbox_api.go; the templates, style sheet and script in inbox/.
//
// What guards it: every value a page shows goes through html/template; a
// message's HTML is only ever served as a document of its own, sandboxed
// and under a Content-Security-Policy that lets it run no script and load
// nothing from anywhere (see serveHTML); the app's own pages may run only
// their own script. Requests that change something are POST or DELETE
// and must come from the inbox's own pages (sameOrigin). Bound to a
// loopback address it answers only to the names of loopback (hostAllowed),
// since a web page elsewhere could otherwise point a DNS name at 127.0.0.1
// and read the mail; bound to any other address it needs -http-auth.

//go:embed inbox
var inboxFiles embed.FS

// appCSP is the policy of the app's own pages: their own script, style
// sheet and frames only; no plugin, no remote load, no framing by others.
const appCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; frame-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'self'"

// webServer serves the inbox.
type webServer struct {
	inbox *inbox
	log   *slog.Logger
	users passwords // -http-auth: who may look; nil when bound to loopback
	host  string    // -http's host, a name the Host header may carry
	pages *template.Template
	mux   *http.ServeMux
}

// newWebServer returns the handler of the inbox in, for -http's host.
func newWebServer(in *inbox, log *slog.Logger, users passwords, host string) *webServer {
	ws := &webServer{inbox: in, log: log, users: users, host: host, mux: http.NewServeMux()}
	ws.pages = template.Must(template.New("").Funcs(templateFuncs).ParseFS(inboxFiles, "inbox/*.html"))
	static, _ := fs.Sub(inboxFiles, "inbox")
	routes := []struct {
		pattern string
		handler http.HandlerFunc
	}{
		{"GET /{$}", ws.pageList},
		{"GET /message/{id}", ws.pageMessage},
		{"GET /message/{id}/html", ws.serveHTML},
		{"GET /message/{id}/session", ws.pageSession},
		{"POST /message/{id}/delete", ws.formDelete},
		{"POST /delete-all", ws.formDeleteAll},
		{"GET /state-table", ws.pageStateTable},
		{"GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)).ServeHTTP},

		// mailpit's paths (https://mailpit.axllent.org/docs/api-v1/), so
		// that scripts written for it work here; /session is this
		// program's own.
		{"GET /api/v1/messages", ws.apiList},
		{"GET /api/v1/search", ws.apiList},
		{"DELETE /api/v1/messages", ws.apiDelete},
		{"GET /api/v1/message/{id}", ws.apiMessage},
		{"GET /api/v1/message/{id}/headers", ws.apiHeaders},
		{"GET /api/v1/message/{id}/raw", ws.apiRaw},
		{"GET /api/v1/message/{id}/part/{part}", ws.apiPart},
		{"GET /api/v1/message/{id}/session", ws.apiSession},
		{"GET /api/v1/events", ws.serveEvents},
	}
	for _, rt := range routes {
		ws.mux.HandleFunc(rt.pattern, rt.handler)
	}
	return ws
}

// ServeHTTP checks every request before it reaches its route.
func (ws *webServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	defer ws.recover(w, r)
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "SAMEORIGIN")
	h.Set("Content-Security-Policy", appCSP)
	switch {
	case !ws.hostAllowed(r.Host):
		http.Error(w, "Host "+r.Host+" is not a name of this inbox (it is bound to loopback)", http.StatusMisdirectedRequest)
	case ws.users != nil && !ws.authorized(r):
		h.Set("WWW-Authenticate", `Basic realm="smtpd inbox", charset="UTF-8"`) // RFC 7617
		http.Error(w, "authentication required (-http-auth)", http.StatusUnauthorized)
	case !safeMethod(r.Method) && !sameOrigin(r):
		http.Error(w, "refused: a request that changes the inbox must come from the inbox's own pages", http.StatusForbidden)
	default:
		ws.mux.ServeHTTP(w, r)
	}
}

// recover turns a handler's panic into a 500 for this request alone, and
// logs it: a message that trips a bug must not take the inbox down.
func (ws *webServer) recover(w http.ResponseWriter, r *http.Request) {
	v := recover()
	if v == nil {
		return
	}
	if v == http.ErrAbortHandler {
		panic(v) // net/http's way to abort a response, not a bug
	}
	ws.log.Error("inbox: panic serving a request", "method", r.Method, "path", r.URL.Path, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
	http.Error(w, "internal error (logged)", http.StatusInternalServerError)
}

// hostAllowed reports whether a request's Host may be served. With
// -http-auth every name may; without it (bound to loopback) only IP
// addresses, "localhost" and -http's own host name, which stops DNS
// rebinding: an attacker's name resolved to 127.0.0.1 is refused.
func (ws *webServer) hostAllowed(hostport string) bool {
	if ws.users != nil {
		return true
	}
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	return net.ParseIP(host) != nil || strings.EqualFold(host, "localhost") || strings.EqualFold(host, ws.host)
}

// authorized checks HTTP Basic credentials (RFC 7617) against -http-auth,
// in constant time (passwords.check).
func (ws *webServer) authorized(r *http.Request) bool {
	user, password, ok := r.BasicAuth()
	return ok && ws.users.check(user, password)
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// sameOrigin reports whether a request that changes something comes from
// the inbox's own pages. Browsers say where a request comes from in
// Sec-Fetch-Site (Fetch Metadata) and Origin (RFC 6454); either must name
// this origin. A request with neither is not from a browser (curl, a
// script) and is let through: no web page can send one.
func sameOrigin(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "same-origin":
	default:
		return false
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && strings.EqualFold(u.Host, r.Host)
}

// webListener is the inbox's HTTP server and its listener.
type webListener struct {
	srv *http.Server
	l   net.Listener
	url string
}

// openWeb reads the inbox's index from the store, loads -http-auth and
// listens on -http; serve starts the server. Every error is the
// configuration's, reported before anything is served.
func openWeb(cfg *config, log *slog.Logger) (*inbox, *webListener, error) {
	var users passwords
	if cfg.httpAuth != "" {
		var err error
		if users, err = loadPasswords("-http-auth", cfg.httpAuth); err != nil {
			return nil, nil, err
		}
	}
	in, err := newInbox(cfg, log)
	if err != nil {
		return nil, nil, err
	}
	l, err := net.Listen("tcp", cfg.http)
	if err != nil {
		return nil, nil, fmt.Errorf("-http: %v", err)
	}
	host, _, _ := net.SplitHostPort(cfg.http)
	srv := &http.Server{
		Handler: newWebServer(in, log, users, host),
		// A slow client may not hold a connection before its request;
		// no write timeout, since the event stream lasts.
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	srv.RegisterOnShutdown(in.events.close)
	return in, &webListener{srv: srv, l: l, url: "http://" + l.Addr().String() + "/"}, nil
}

// serve serves until shutdown, and returns nil then.
func (wl *webListener) serve() error {
	err := wl.srv.Serve(wl.l)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return fmt.Errorf("-http: %v", err)
}

// close ends the event streams and waits a little for the requests
// under way, then closes what is left. A nil wl (no -http) does nothing.
func (wl *webListener) close() {
	if wl == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if wl.srv.Shutdown(ctx) != nil {
		wl.srv.Close()
	}
	wl.l.Close() // when serve never ran, Shutdown does not know it
}
