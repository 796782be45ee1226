package smtpd

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// checkTrace checks a session's events against what the client sent (in)
// and what the server wrote (out): the replies' octets are out exactly;
// the client's octets are a prefix of in, unless AUTH masked some; the
// session's last event is its only TraceEnd; every event has a kind with a
// name.
func checkTrace(t *testing.T, events []TraceEvent, in, out []byte) {
	t.Helper()
	var client, server []byte
	for i, ev := range events {
		switch ev.Kind {
		case TraceReply:
			server = append(server, ev.Data...)
			if len(ev.Data) < 3 || string(ev.Data[:3]) != strconv.Itoa(ev.Code) {
				t.Fatalf("reply event with code %d holds %q", ev.Code, ev.Data)
			}
		case TraceProxy, TraceCommand, TraceResponse, TraceContent, TraceInput:
			client = append(client, ev.Data...)
		case TraceEnd:
			if i != len(events)-1 {
				t.Fatalf("TraceEnd is event %d of %d", i, len(events))
			}
		}
		if ev.Kind.String() == "unknown" || ev.Time.IsZero() {
			t.Fatalf("event %d: kind %d, time %v", i, ev.Kind, ev.Time)
		}
	}
	if len(events) == 0 || events[len(events)-1].Kind != TraceEnd {
		t.Fatalf("the session's events do not end with TraceEnd: %d events", len(events))
	}
	if !bytes.Equal(server, out) {
		t.Fatalf("the reply events say\n%q\nthe server wrote\n%q", server, out)
	}
	if !bytes.HasPrefix(in, client) && !bytes.Contains(bytes.ToUpper(in), []byte("AUTH")) {
		t.Fatalf("the client events say\n%q\nthe client sent\n%q", client, in)
	}
}

// traceLog is a Server.Trace that keeps every session's events.
type traceLog struct {
	mu       sync.Mutex
	sessions [][]TraceEvent
}

func (l *traceLog) trace(remote, local net.Addr) func(*TraceEvent) {
	l.mu.Lock()
	i := len(l.sessions)
	l.sessions = append(l.sessions, nil)
	l.mu.Unlock()
	return func(ev *TraceEvent) {
		e := *ev
		e.Data = bytes.Clone(ev.Data)
		l.mu.Lock()
		l.sessions[i] = append(l.sessions[i], e)
		l.mu.Unlock()
	}
}

func (l *traceLog) session(i int) []TraceEvent {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]TraceEvent(nil), l.sessions[i]...)
}

// keepConn keeps what a client sent and received.
type keepConn struct {
	net.Conn
	sent, received bytes.Buffer
}

func (c *keepConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.received.Write(p[:n])
	return n, err
}

func (c *keepConn) Write(p []byte) (int, error) {
	c.sent.Write(p)
	return c.Conn.Write(p)
}

// TestTraceSession follows one session over loopback: the events hold the
// client's octets and the server's exactly, AUTH's password masked; the
// state events follow the table; the message events carry the envelope
// the Handler got.
func TestTraceSession(t *testing.T) {
	var log traceLog
	rec := &recorder{}
	srv := &Server{Handler: rec, AllowInsecureAuth: true, Trace: log.trace,
		Authenticate: func(_ context.Context, _ *Envelope, _, user, pass string) error {
			if user == "jane" && pass == "secret" {
				return nil
			}
			return ErrAuthFailed
		}}
	addr := startServer(t, srv)
	c := dial(t, addr)
	tap := &keepConn{Conn: c.conn}
	c.conn = tap
	c.r.Reset(tap)
	c.expect("220 ")
	c.do("EHLO client.test", "250 ")
	c.do("AUTH LOGIN", "334 ")
	c.do(b64("jane"), "334 ")
	c.do(b64("wrong"), "535 ")
	c.do("AUTH PLAIN "+b64("\x00jane\x00secret"), "235 ")
	c.do("NOOP bare\nLF", "500 ")
	c.do("MAIL FROM:<a@example.org>", "250 ")
	c.do("RCPT TO:<b@example.org>", "250 ")
	c.do("DATA", "354 ")
	c.send("Subject: hi\r\n\r\n..dot\r\n.\r\n")
	c.expect("250 ")
	c.do("MAIL FROM:<a@example.org>", "250 ")
	c.do("RCPT TO:<b@example.org>", "250 ")
	c.cmd("BDAT 3")
	c.send("abc")
	c.expect("250 ")
	c.cmd("BDAT 2 LAST")
	c.send("de")
	c.expect("250 ")
	c.do("QUIT", "221 ")
	c.expectClosed()
	srv.Close() // the session's last event comes before it is released

	events := log.session(0)
	sent := tap.sent.Bytes()
	for _, secret := range []string{b64("\x00jane\x00secret"), b64("wrong")} {
		sent = bytes.Replace(sent, []byte(secret), []byte(maskedFor(secret)), 1)
	}
	checkTrace(t, events, sent, tap.received.Bytes())
	var client []byte
	var states, auths, verbs []string
	var msgs []*Envelope
	for _, ev := range events {
		switch ev.Kind {
		case TraceCommand, TraceResponse, TraceContent:
			client = append(client, ev.Data...)
		case TraceState:
			states = append(states, ev.State+">"+ev.Next)
		case TraceAuth:
			auths = append(auths, ev.Mechanism+":"+ev.Identity)
		case TraceMessage, TraceDelivered:
			msgs = append(msgs, ev.Envelope)
		}
		if ev.Kind == TraceCommand {
			verbs = append(verbs, ev.Verb)
			if ev.Verb != "" && (ev.RFC == "" || ev.Rule == "") {
				t.Errorf("command %q without its rule: %+v", ev.Data, ev)
			}
		}
	}
	if !bytes.Equal(client, sent) {
		t.Errorf("client events\n%q\nwant\n%q", client, sent)
	}
	if bytes.Contains(client, []byte(b64("\x00jane\x00secret"))) || bytes.Contains(client, []byte(b64("wrong"))) {
		t.Error("a secret reached the trace")
	}
	if got, want := strings.Join(states, " "), "connected>identified identified>mail mail>rcpt rcpt>identified identified>mail mail>rcpt rcpt>chunk chunk>identified"; got != want {
		t.Errorf("state changes %s\nwant %s", got, want)
	}
	if got, want := strings.Join(auths, " "), "LOGIN: PLAIN:jane"; got != want {
		t.Errorf("auth events %q, want %q", got, want)
	}
	if got, want := strings.Join(verbs, ","), "EHLO,AUTH,AUTH,,MAIL,RCPT,DATA,MAIL,RCPT,BDAT,BDAT LAST,QUIT"; got != want {
		t.Errorf("command verbs %s, want %s", got, want)
	}
	d := rec.delivered()
	if len(msgs) != 4 || len(d) != 2 || msgs[0] != d[0].env || msgs[1] != d[0].env || msgs[3] != d[1].env {
		t.Errorf("message events %v, deliveries %d", msgs, len(d))
	}
}

// maskedFor is what the trace shows for the secrets TestTraceSession sends.
func maskedFor(secret string) string {
	if secret == b64("wrong") {
		return b64(MaskedSecret)
	}
	return b64("\x00jane\x00" + MaskedSecret)
}

// TestTraceTLSAndProxy: a PROXY header is an event of its own with the
// addresses it carries, and a STARTTLS session goes on in the clear in
// the events after a TLS event.
func TestTraceTLSAndProxy(t *testing.T) {
	serverTLS, clientTLS := testTLS(t)
	var log traceLog
	srv := &Server{TLSConfig: serverTLS, Trace: log.trace,
		ProxyTrusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}
	addr := startServer(t, srv)
	c := dial(t, addr)
	c.send("PROXY TCP4 192.0.2.1 198.51.100.2 56324 25\r\n")
	c.expect("220 ")
	c.do("EHLO client.test", "250 ")
	c.startTLS(clientTLS)
	c.do("EHLO client.test", "250 ")
	c.do("QUIT", "221 ")
	c.expectClosed()
	srv.Close()

	var kinds []string
	for _, ev := range log.session(0) {
		kinds = append(kinds, ev.Kind.String())
		switch ev.Kind {
		case TraceProxy:
			if string(ev.Data) != "PROXY TCP4 192.0.2.1 198.51.100.2 56324 25\r\n" || ev.Remote.String() != "192.0.2.1:56324" {
				t.Errorf("proxy event %q from %v", ev.Data, ev.Remote)
			}
		case TraceTLS:
			if ev.TLS == nil || ev.Implicit {
				t.Errorf("TLS event %+v", ev)
			}
		}
	}
	want := "proxy reply command reply state command reply tls state command reply state command reply end"
	if got := strings.Join(kinds, " "); got != want {
		t.Errorf("events %s\nwant   %s", got, want)
	}
}

// TestMaskLine: what a trace shows of each kind of AUTH response.
func TestMaskLine(t *testing.T) {
	for _, tc := range []struct {
		mech string
		k    int
		in   string
		want string
	}{
		{"PLAIN", 1, b64("\x00jane\x00secret") + "\r\n", b64("\x00jane\x00"+MaskedSecret) + "\r\n"},
		{"PLAIN", 1, b64("boss\x00jane\x00secret") + "\n", b64("boss\x00jane\x00"+MaskedSecret) + "\n"},
		{"PLAIN", 1, b64("no nul") + "\r\n", b64(MaskedSecret) + "\r\n"},
		{"LOGIN", 1, b64("jane") + "\r\n", b64("jane") + "\r\n"},
		{"LOGIN", 2, b64("secret") + "\r\n", b64(MaskedSecret) + "\r\n"},
		{"CRAM-MD5", 1, b64("jane 0123abcd") + "\r\n", b64(MaskedSecret) + "\r\n"},
		{"PLAIN", 1, "*\r\n", "*\r\n"},
		{"PLAIN", 1, "=\r\n", "=\r\n"},
		{"LOGIN", 2, "secret in the clear\r\n", MaskedSecret + "\r\n"},
	} {
		if got := string(maskLine([]byte(tc.in), 0, tc.mech, tc.k)); got != tc.want {
			t.Errorf("%s %d %q: got %q, want %q", tc.mech, tc.k, tc.in, got, tc.want)
		}
	}
	if got, want := string(maskAuthCommand([]byte("auth plain "+b64("\x00u\x00p")+"\r\n"))), "auth plain "+b64("\x00u\x00"+MaskedSecret)+"\r\n"; got != want {
		t.Errorf("AUTH command: got %q, want %q", got, want)
	}
}
