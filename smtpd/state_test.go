package smtpd

import (
	"bytes"
	"context"
	"crypto/tls"
	"flag"
	"os"
	"strconv"
	"testing"
)

var update = flag.Bool("update", false, "rewrite generated files (STATE-TABLE.md)")

// TestStateTableDocument fails when STATE-TABLE.md is not what the table
// says; go generate (or -update) rewrites it.
func TestStateTableDocument(t *testing.T) {
	var b bytes.Buffer
	if err := WriteStateTable(&b); err != nil {
		t.Fatal(err)
	}
	writeReplies(&b, repliesInSource(t))
	want := b.Bytes()
	if *update {
		if err := os.WriteFile("STATE-TABLE.md", want, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	got, err := os.ReadFile("STATE-TABLE.md")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("STATE-TABLE.md is stale; run go generate ./smtpd")
	}
}

// TestStateTableInvariants checks the properties RFC 5321 asks of the state
// machine.
func TestStateTableInvariants(t *testing.T) {
	// No (state, verb) pair is listed twice.
	seen := map[stateVerb]int{}
	for i, r := range stateTable {
		for s := state(0); s < numStates; s++ {
			if r.from.has(s) {
				if j, dup := seen[stateVerb{s, r.verb}]; dup {
					t.Errorf("rules %d and %d both cover %s in state %s", j, i, r.verb, s)
				}
				seen[stateVerb{s, r.verb}] = i
			}
		}
		if r.from == 0 {
			t.Errorf("rule %d (%s) applies in no state", i, r.verb)
		}
		if r.rfc == "" || r.note == "" {
			t.Errorf("rule %d (%s) lacks its RFC section or note", i, r.verb)
		}
		for _, g := range r.guards {
			if g.name == "" || g.holds == nil || g.reply == nil || g.rfc == "" {
				t.Errorf("rule %d (%s): guard %q lacks its condition, reply or RFC section", i, r.verb, g.name)
			}
		}
		if r.reply != nil && len(r.guards) > 0 {
			t.Errorf("rule %d (%s): a fixed reply and guards; the guards would never be checked", i, r.verb)
		}
		if r.reply == nil && commands[r.verb] == nil {
			t.Errorf("rule %d: no handler for %s", i, r.verb)
		}
		// A verb's place in a pipelined group does not depend on the
		// state (RFC 2920 3.1).
		if p := verbPlaces[r.verb]; p != r.place {
			t.Errorf("rule %d: %s is %s here, %s in another row", i, r.verb, r.place, p)
		}
	}

	// QUIT is valid in every state (RFC 5321 4.1.1.10); NOOP and RSET in
	// every state but refused, where 3.1 allows only QUIT.
	for s := state(0); s < numStates; s++ {
		for _, verb := range []string{"QUIT", "NOOP", "RSET"} {
			_, refusal := find(s, verb)
			valid := refusal == nil
			if want := verb == "QUIT" || s != stateRefused; valid != want {
				t.Errorf("%s in state %s: valid=%v, want %v", verb, s, valid, want)
			}
		}
	}

	// Every state is reachable from connected, except refused, which only
	// the connection check enters.
	reached := map[state]bool{stateConnected: true}
	for changed := true; changed; {
		changed = false
		for _, r := range stateTable {
			for s := state(0); s < numStates; s++ {
				if reached[s] && r.from.has(s) && r.next != stay && !reached[r.next] {
					reached[r.next] = true
					changed = true
				}
			}
		}
	}
	for s := state(0); s < numStates; s++ {
		if !reached[s] && s != stateRefused {
			t.Errorf("state %s is not reachable", s)
		}
	}
}

// TestLookup checks the replies for commands the table does not allow.
func TestLookup(t *testing.T) {
	for _, tc := range []struct {
		s    state
		verb string
		want int // 0: allowed
	}{
		{stateConnected, "MAIL", 503},
		{stateIdentified, "RCPT", 503},
		{stateIdentified, "DATA", 503},
		{stateMail, "MAIL", 503},
		{stateMail, "DATA", 554},
		{stateRcpt, "DATA", 0},
		{stateConnected, "", 500},
		{stateConnected, "TURN", 502},
		{stateRcpt, "SAML", 502},
		{stateRefused, "EHLO", 503},
		{stateRefused, "", 503},
		{stateRefused, "QUIT", 0},
	} {
		r, refusal := find(tc.s, tc.verb)
		got := replyCode(r, refusal)
		if got != tc.want {
			t.Errorf("%s in %s: got %s, want %d", tc.verb, tc.s, strconv.Itoa(got), tc.want)
		}
	}
}

// TestGuards checks that lookup refuses a command its rule allows when a
// guard holds, with the first guard's reply, in the order the handlers
// checked them before the guards moved into the table.
func TestGuards(t *testing.T) {
	auth := func(context.Context, *Envelope, string, string, string) error { return nil }
	tlsOn := &tls.ConnectionState{}
	for _, tc := range []struct {
		name string
		c    *conn
		verb string
		arg  string
		want int // 0: allowed
	}{
		{"STARTTLS not offered", &conn{srv: &Server{}, state: stateIdentified}, "STARTTLS", "", 502},
		{"STARTTLS not offered, implicit TLS", &conn{srv: &Server{}, state: stateIdentified, tls: tlsOn}, "STARTTLS", "", 502},
		{"STARTTLS under TLS", &conn{srv: &Server{TLSConfig: &tls.Config{}}, state: stateIdentified, tls: tlsOn}, "STARTTLS", "x", 503},
		{"STARTTLS", &conn{srv: &Server{TLSConfig: &tls.Config{}}, state: stateConnected}, "STARTTLS", "", 0},
		{"AUTH not offered", &conn{srv: &Server{}, state: stateIdentified, authIdentity: "a"}, "AUTH", "PLAIN", 502},
		{"AUTH twice", &conn{srv: &Server{Authenticate: auth}, state: stateIdentified, authIdentity: "a"}, "AUTH", "PLAIN", 503},
		{"AUTH in the clear", &conn{srv: &Server{Authenticate: auth}, state: stateIdentified}, "AUTH", "PLAIN", 538},
		{"AUTH in the clear, allowed", &conn{srv: &Server{Authenticate: auth, AllowInsecureAuth: true}, state: stateIdentified}, "AUTH", "PLAIN", 0},
		{"AUTH under TLS", &conn{srv: &Server{Authenticate: auth}, state: stateIdentified, tls: tlsOn}, "AUTH", "PLAIN", 0},
		{"AUTH in a transaction", &conn{srv: &Server{Authenticate: auth}, state: stateMail, tls: tlsOn}, "AUTH", "PLAIN", 503},
		{"MAIL before STARTTLS", &conn{srv: &Server{RequireTLS: true, RequireAuth: true}, state: stateIdentified}, "MAIL", "FROM:<a@b.example>", 530},
		{"malformed MAIL before STARTTLS", &conn{srv: &Server{RequireTLS: true, RequireAuth: true}, state: stateIdentified}, "MAIL", "FROM:a@b.example", 0},
		{"MAIL under TLS before AUTH", &conn{srv: &Server{RequireTLS: true, RequireAuth: true}, state: stateIdentified, tls: tlsOn}, "MAIL", "FROM:<a@b.example>", 530},
		{"MAIL under TLS after AUTH", &conn{srv: &Server{RequireTLS: true, RequireAuth: true}, state: stateIdentified, tls: tlsOn, authIdentity: "a"}, "MAIL", "FROM:<a@b.example>", 0},
		{"DATA with an argument after BINARYMIME", &conn{srv: &Server{}, state: stateRcpt, env: &Envelope{Body: "BINARYMIME"}}, "DATA", "x", 501},
		{"DATA after BINARYMIME", &conn{srv: &Server{}, state: stateRcpt, env: &Envelope{Body: "BINARYMIME"}}, "DATA", "", 503},
		{"DATA", &conn{srv: &Server{}, state: stateRcpt, env: &Envelope{Body: "8BITMIME"}}, "DATA", "", 0},
		{"DATA without recipients", &conn{srv: &Server{}, state: stateMail, env: &Envelope{Body: "BINARYMIME"}}, "DATA", "x", 554},
	} {
		r, _, refusal := lookup(tc.c, tc.verb, tc.arg)
		got := replyCode(r, refusal)
		if got != tc.want {
			t.Errorf("%s: got %d, want %d", tc.name, got, tc.want)
		}
	}
}

// TestStateString: every state value, the pseudo-states included, has a
// name; a log line must never panic.
func TestStateString(t *testing.T) {
	for s, want := range map[state]string{stateConnected: "connected", stateChunk: "chunk", stateDone: "done", stay: "=", state(200): "state(200)"} {
		if got := s.String(); got != want {
			t.Errorf("state %d: got %q, want %q", uint8(s), got, want)
		}
	}
}

// replyCode is the code a lookup answers with: the refusal's, the row's
// fixed reply's, or 0 when the handler runs.
func replyCode(r *rule, refusal *Reply) int {
	switch {
	case refusal != nil:
		return refusal.Code
	case r.reply != nil:
		return r.reply.Code
	}
	return 0
}
