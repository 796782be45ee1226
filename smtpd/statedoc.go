package smtpd

import (
	"bytes"
	"fmt"
	"io"
	"sort"
	"strings"
)

// WriteStateTable writes the state table that every session follows as a
// Markdown document: the commands by states, then each rule with its RFC
// section, then the guards. STATE-TABLE.md in this package's directory is
// its output; a program can show it, as the sink's web inbox does beside
// a session's trace.
func WriteStateTable(w io.Writer) error {
	b := new(bytes.Buffer)
	b.WriteString("# The SMTP session's state table\n\n")
	b.WriteString("Generated from `stateTable` in state.go by `go generate`; do not edit.\n\n")
	b.WriteString("Each cell says what a command does in a state: the state it leads to when it\n")
	b.WriteString("succeeds (`=` stays), or the fixed reply it gets. A command not allowed in a\n")
	b.WriteString("state gets `503 5.5.1 Bad sequence of commands` (RFC 5321 4.1.4); in state\n")
	b.WriteString("`refused` everything but QUIT does (RFC 5321 3.1). Unknown verbs get `500`;\n")
	verbs := tableVerbs()
	fmt.Fprintf(b, "%s get `502` (RFC 5321 4.2.4).\n\n", sortedKeys(notImplemented))
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

	writeCommands(b, verbs)
	writeRules(b)
	writeGuards(b)
	_, err := w.Write(b.Bytes())
	return err
}

// writeCommands writes the table of commands by states.
func writeCommands(b *bytes.Buffer, verbs []string) {
	b.WriteString("| command | group |")
	for s := state(0); s < numStates; s++ {
		fmt.Fprintf(b, " %s |", s)
	}
	b.WriteString("\n| --- | --- |")
	for s := state(0); s < numStates; s++ {
		b.WriteString(" --- |")
	}
	b.WriteString("\n")
	for _, verb := range verbs {
		fmt.Fprintf(b, "| %s | %s |", verb, placeOf(verb))
		for s := state(0); s < numStates; s++ {
			r, refusal := find(s, verb)
			switch {
			case refusal != nil:
				fmt.Fprintf(b, " %d |", refusal.Code)
			case r.reply != nil:
				fmt.Fprintf(b, " %d |", r.reply.Code)
			case r.next == stay:
				fmt.Fprintf(b, " =%s |", guarded(r))
			default:
				fmt.Fprintf(b, " %s%s |", r.next, guarded(r))
			}
		}
		b.WriteString("\n")
	}

}

// writeRules writes the states and the rules of the table, in order.
func writeRules(b *bytes.Buffer) {
	b.WriteString("\nStates:\n\n")
	for s := state(0); s < numStates; s++ {
		fmt.Fprintf(b, "- `%s`: %s\n", s, stateDocs[s])
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
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s |\n", r.verb, joinComma(in), next, r.rfc, note)
	}

}

// writeGuards writes every guard, with its rule, reply and RFC section.
func writeGuards(b *bytes.Buffer) {
	b.WriteString("\nGuards: once a rule allows a command, its guards are checked in this order,\n")
	b.WriteString("and the first that holds refuses the command with its reply; the command's\n")
	b.WriteString("handler is not called and the state does not change.\n\n")
	b.WriteString("| command | in states | guard | reply | RFC |\n| --- | --- | --- | --- | --- |\n")
	for _, r := range stateTable {
		for _, g := range r.guards {
			fmt.Fprintf(b, "| %s | %s | %s | `%d %s %s` | %s |\n", r.verb, joinComma(stateList(r.from)), g.name,
				g.reply.Code, g.reply.Enhanced, g.reply.Text, g.rfc)
		}
	}
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
