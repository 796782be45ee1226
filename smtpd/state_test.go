package smtpd

import (
	"bytes"
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite generated files (STATE-TABLE.md)")

// renderStateTable writes the state table as a Markdown document: the
// commands by states, then each rule with its RFC section.
func renderStateTable() []byte {
	var b bytes.Buffer
	b.WriteString("# The SMTP session's state table\n\n")
	b.WriteString("Generated from `stateTable` in state.go by `go generate`; do not edit.\n\n")
	b.WriteString("Each cell says what a command does in a state: the state it leads to when it\n")
	b.WriteString("succeeds (`=` stays), or the fixed reply it gets. A command not allowed in a\n")
	b.WriteString("state gets `503 5.5.1 Bad sequence of commands` (RFC 5321 4.1.4); in state\n")
	b.WriteString("`refused` everything but QUIT does (RFC 5321 3.1). Unknown verbs get `500`;\n")
	verbs := tableVerbs()
	fmt.Fprintf(&b, "%s get `502` (RFC 5321 4.2.4).\n\n", sortedKeys(notImplemented))
	b.WriteString("The `group` column says where a command may stand in a group of commands\n")
	b.WriteString("sent without waiting for the replies (RFC 2920 3.1): `anywhere`, or `last`.\n")
	b.WriteString("Before EHLO, after HELO and after STARTTLS every command is `last` (RFC 5321\n")
	b.WriteString("4.3.1), and so are the verbs not listed here. A client that sent more behind\n")
	b.WriteString("a `last` command gets `554 5.5.0` instead of its reply and is cut off, unless\n")
	b.WriteString("`Server.DisablePipeliningSync`. BDAT's chunk follows it at once (RFC 3030 2).\n\n")
	b.WriteString("A command allowed in a state may still be refused by a guard of its rule:\n")
	b.WriteString("a condition of the session, listed under the rules below. A cell marked `*`\n")
	b.WriteString("has guards. In the rules, a next state \"at once\" is entered before the\n")
	b.WriteString("command's handler runs, not when it succeeds: a first BDAT chunk's handler\n")
	b.WriteString("reads the commands between the chunks, and they find the session in it.\n\n")

	b.WriteString("| command | group |")
	for s := state(0); s < numStates; s++ {
		fmt.Fprintf(&b, " %s |", s)
	}
	b.WriteString("\n| --- | --- |")
	for s := state(0); s < numStates; s++ {
		b.WriteString(" --- |")
	}
	b.WriteString("\n")
	for _, verb := range verbs {
		fmt.Fprintf(&b, "| %s | %s |", verb, placeOf(verb))
		for s := state(0); s < numStates; s++ {
			r, refusal := find(s, verb)
			switch {
			case refusal != nil:
				fmt.Fprintf(&b, " %d |", refusal.Code)
			case r.reply != nil:
				fmt.Fprintf(&b, " %d |", r.reply.Code)
			case r.next == stay:
				fmt.Fprintf(&b, " =%s |", guarded(r))
			default:
				fmt.Fprintf(&b, " %s%s |", r.next, guarded(r))
			}
		}
		b.WriteString("\n")
	}

	b.WriteString("\nStates:\n\n")
	for s := state(0); s < numStates; s++ {
		fmt.Fprintf(&b, "- `%s`: %s\n", s, stateDocs[s])
	}
	b.WriteString("\nRules, in the order of the table:\n\n")
	b.WriteString("| command | in states | next | RFC 5321 | note |\n| --- | --- | --- | --- | --- |\n")
	for _, r := range stateTable {
		var in []string
		for s := state(0); s < numStates; s++ {
			if r.from.has(s) {
				in = append(in, s.String())
			}
		}
		next := "="
		if r.next != stay {
			next = r.next.String()
		}
		if r.early {
			next += ", at once"
		}
		note := r.note
		if r.reply != nil {
			note = fmt.Sprintf("`%d %s %s`: %s", r.reply.Code, r.reply.Enhanced, r.reply.Text, note)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", r.verb, joinComma(in), next, r.rfc, note)
	}

	b.WriteString("\nGuards: once a rule allows a command, its guards are checked in this order,\n")
	b.WriteString("and the first that holds refuses the command with its reply; the command's\n")
	b.WriteString("handler is not called and the state does not change.\n\n")
	b.WriteString("| command | in states | guard | reply | RFC |\n| --- | --- | --- | --- | --- |\n")
	for _, r := range stateTable {
		for _, g := range r.guards {
			fmt.Fprintf(&b, "| %s | %s | %s | `%d %s %s` | %s |\n", r.verb, joinComma(stateList(r.from)), g.name,
				g.reply.Code, g.reply.Enhanced, g.reply.Text, g.rfc)
		}
	}
	return b.Bytes()
}

// guarded marks a cell whose rule has guards.
func guarded(r *rule) string {
	if len(r.guards) > 0 {
		return "*"
	}
	return ""
}

// stateList names the states of a set, in order.
func stateList(set states) []string {
	var in []string
	for s := state(0); s < numStates; s++ {
		if set.has(s) {
			in = append(in, s.String())
		}
	}
	return in
}

var stateDocs = [numStates]string{
	stateRefused:    "the connection check refused the client; the greeting was 554 (RFC 5321 3.1)",
	stateConnected:  "greeted with 220; the client has not sent HELO or EHLO (4.1.1.1)",
	stateIdentified: "after HELO or EHLO; no mail transaction (3.3)",
	stateMail:       "MAIL accepted; no recipient yet (3.3)",
	stateRcpt:       "at least one recipient accepted; DATA or BDAT may follow (3.3)",
	stateChunk:      "a BDAT chunk without LAST accepted; the message goes on in more chunks (RFC 3030 2)",
}

// tableVerbs lists the verbs of the table in the order they first appear.
func tableVerbs() []string {
	var verbs []string
	seen := map[string]bool{}
	for _, r := range stateTable {
		if !seen[r.verb] {
			seen[r.verb] = true
			verbs = append(verbs, r.verb)
		}
	}
	return verbs
}

func sortedKeys(m map[string]bool) string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return joinComma(keys)
}

func joinComma(s []string) string { return strings.Join(s, ", ") }

// TestStateTableDocument fails when STATE-TABLE.md is not what the table
// says; go generate (or -update) rewrites it.
func TestStateTableDocument(t *testing.T) {
	want := renderStateTable()
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
