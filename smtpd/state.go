package smtpd

import "strconv"

//go:generate go test -run ^TestStateTableDocument$ -update

// The SMTP session as a state machine (RFC 5321 4.1.4 and 3.3), written down
// as data. Each rule says: in these states, this command is allowed, and when
// it succeeds the session moves to this state. A command the table does not
// allow in the current state gets "503 5.5.1 Bad sequence of commands"
// (RFC 5321 4.2.4 and 4.1.4). A rule may have guards: conditions of the
// session beyond its state (TLS active, already authenticated) under which
// the command is refused all the same, each with its reply. The command's
// handler decides only whether a command in its right place succeeds; it
// never checks the state or a guard's condition itself. STATE-TABLE.md is
// generated from this table by the test TestStateTableDocument.

// state is a session state. The names follow RFC 5321's description of a
// mail transaction (3.3).
type state uint8

const (
	// stateRefused: the connection check refused the client; the greeting
	// was 554 and only QUIT is allowed (RFC 5321 3.1).
	stateRefused state = iota
	// stateConnected: greeted with 220, no HELO or EHLO yet (4.1.1.1).
	stateConnected
	// stateIdentified: after HELO or EHLO, no mail transaction (3.3).
	stateIdentified
	// stateMail: MAIL accepted, no RCPT accepted yet (3.3).
	stateMail
	// stateRcpt: at least one RCPT accepted (3.3).
	stateRcpt
	// stateChunk: a BDAT chunk without LAST accepted; the message goes on
	// in further chunks (RFC 3030 2).
	stateChunk

	numStates
)

// stateNames are used in the generated document and in logs.
var stateNames = [numStates]string{
	stateRefused:    "refused",
	stateConnected:  "connected",
	stateIdentified: "identified",
	stateMail:       "mail",
	stateRcpt:       "rcpt",
	stateChunk:      "chunk",
}

// Two values outside the table's states, so that no set holds them:
const (
	// stateDone is set by QUIT and by commands that end the session; the
	// command loop stops when it sees it.
	stateDone state = 254
	// stay as a rule's next state means the command leaves the state
	// unchanged.
	stay state = 255
)

func (s state) String() string {
	switch {
	case s < numStates:
		return stateNames[s]
	case s == stateDone:
		return "done"
	case s == stay:
		return "="
	}
	return "state(" + strconv.Itoa(int(s)) + ")"
}

// states is a set of states, so that one rule can cover several.
type states uint16

func setOf(ss ...state) states {
	var set states
	for _, s := range ss {
		set |= 1 << s
	}
	return set
}

func (set states) has(s state) bool { return set&(1<<s) != 0 }

// Common sets of states.
var (
	afterHello = setOf(stateIdentified, stateMail, stateRcpt, stateChunk)
	talking    = setOf(stateConnected, stateIdentified, stateMail, stateRcpt, stateChunk)
	// beforeMessage leaves out the states between BDAT chunks.
	beforeMessage = setOf(stateConnected, stateIdentified, stateMail, stateRcpt)
)

// place says where a command may stand in a group of pipelined commands
// (RFC 2920 3.1): a client that negotiated PIPELINING may send a group
// without waiting for the replies, but only some commands may be followed
// by more of the group.
type place bool

const (
	// anywhere: the command may be followed by others of its group, as
	// RSET, MAIL and RCPT (RFC 2920 3.1), and BDAT, whose chunk follows
	// it at once and which RFC 3030 4.2 lets be pipelined.
	anywhere place = false
	// last: the command's reply changes what the client must do next,
	// so it must end its group. RFC 2920 3.1 names EHLO, DATA, VRFY,
	// EXPN, TURN, QUIT and NOOP, and makes it the rule for the commands
	// of extensions that say nothing else (AUTH); RFC 3207 4 says it of
	// STARTTLS. HELO and LHLO are EHLO's kin, and HELP is not among the
	// commands RFC 2920 lets stand anywhere. Unless
	// Server.DisablePipeliningSync, input waiting behind such a command
	// ends the session (see conn.unsynchronized).
	last place = true
)

func (p place) String() string {
	if p == last {
		return "last"
	}
	return "anywhere"
}

// rule is one row of the state table.
type rule struct {
	from  states // states in which the command is allowed
	verb  string // the command verb, upper case
	next  state  // state after the command succeeds, or stay
	place place  // where the verb may stand in a pipelined group; the same in all its rows
	rfc   string // where the rule comes from
	note  string // what the rule means, for the generated document
	// reply, when set, is the fixed reply to the command in these states:
	// the command's handler is not called.
	reply *Reply
	// early moves the session to next before the handler runs, not after
	// it succeeded: for a first BDAT chunk that is not the last, whose
	// handler reads the commands between the chunks, which must find the
	// session in the state the chunk leads to (RFC 3030 2).
	early bool
	// guards are checked in order once the rule is found; the first that
	// holds refuses the command with its reply, and the handler is not
	// called. nil: the rule has none.
	guards []*guard
}

// guard is a condition of the session, beyond its state, under which a
// command the table allows is still refused: TLS already active, already
// authenticated. Written here, not in the handlers, so that the table is
// the one place that refuses a command for where it stands, and the
// generated document lists every such refusal with its RFC section.
type guard struct {
	name  string                         // the condition, for the generated document
	holds func(c *conn, arg string) bool // whether the command is refused
	reply *Reply                         // the reply when it holds
	rfc   string                         // where the refusal comes from, with the RFC's number
}

// The guards, in the order their rows check them. The order is part of
// the wire: a command that breaks two rules gets the first one's reply.
var (
	// STARTTLS: not offered, then TLS active. A session on an implicit TLS
	// listener (Server.ServeTLS) of a server without TLSConfig gets 502,
	// not 503: STARTTLS was never offered.
	guardNoTLSConfig = &guard{
		name:  "Server.TLSConfig unset: STARTTLS not offered",
		holds: func(c *conn, _ string) bool { return c.srv.TLSConfig == nil },
		reply: replyNotImplemented,
		rfc:   "RFC 3207 4; RFC 5321 4.2.4",
	}
	guardTLSActive = &guard{
		name:  "TLS already active (STARTTLS or implicit TLS)",
		holds: func(c *conn, _ string) bool { return c.tls != nil },
		reply: replyTLSActive,
		rfc:   "RFC 3207 4.2",
	}

	// AUTH: not offered, then already authenticated, then no TLS.
	guardNoAuthMechanism = &guard{
		name:  "no mechanism configured: AUTH not offered",
		holds: func(c *conn, _ string) bool { return c.srv.Authenticate == nil && len(c.srv.AuthMechanisms) == 0 },
		reply: replyNotImplemented,
		rfc:   "RFC 4954 4; RFC 5321 4.2.4",
	}
	guardAuthenticated = &guard{
		name:  "already authenticated",
		holds: func(c *conn, _ string) bool { return c.authIdentity != "" },
		reply: replyAuthTwice,
		rfc:   "RFC 4954 4",
	}
	guardAuthInsecure = &guard{
		name:  "no TLS and not Server.AllowInsecureAuth",
		holds: func(c *conn, _ string) bool { return !c.authOffered() },
		reply: replyAuthEncryption,
		rfc:   "RFC 4954 6; RFC 4616 3",
	}

	// MAIL: the server's policy of RFC 3207 4 and RFC 4954 6, TLS before
	// AUTH. A malformed MAIL gets its 501 first, in any session, as it did
	// when the handler checked these after the syntax: so the conditions
	// hold only for a MAIL that parses. The second parse costs only the
	// refused command.
	guardRequireTLS = &guard{
		name:  "Server.RequireTLS and no TLS (a malformed MAIL is 501 first)",
		holds: func(c *conn, arg string) bool { return c.srv.RequireTLS && c.tls == nil && c.mailParses(arg) },
		reply: replyTLSRequired,
		rfc:   "RFC 3207 4",
	}
	guardRequireAuth = &guard{
		name:  "Server.RequireAuth and not authenticated (a malformed MAIL is 501 first)",
		holds: func(c *conn, arg string) bool { return c.srv.RequireAuth && c.authIdentity == "" && c.mailParses(arg) },
		reply: replyAuthRequired,
		rfc:   "RFC 4954 6",
	}

	// DATA: a DATA with an argument is a syntax error (501) before
	// anything else, as in any transaction, so that guard comes first.
	guardArgument = &guard{
		name:  "an argument given",
		holds: func(_ *conn, arg string) bool { return arg != "" },
		reply: replyNoArgument,
		rfc:   "RFC 5321 4.1.1.4, 4.3.2",
	}
	guardBinaryMIME = &guard{
		name:  "MAIL said BODY=BINARYMIME: the message must come in BDAT chunks",
		holds: func(c *conn, _ string) bool { return c.env.Body == "BINARYMIME" },
		reply: replyBinaryNeedsBDAT,
		rfc:   "RFC 3030 3",
	}
)

// stateTable is the RFC 5321 state machine, with the rows of the
// extensions: LMTP, STARTTLS, AUTH, CHUNKING. "BDAT LAST" is BDAT with its
// LAST argument: it ends the transaction where BDAT does not, so it has rows
// of its own (splitCommand tells them apart).
var stateTable = []rule{
	{talking, "EHLO", stateIdentified, last, "4.1.1.1, 4.1.4", "a later EHLO resets the transaction as RSET does", nil, false, nil},
	{talking, "HELO", stateIdentified, last, "4.1.1.1, 4.1.4", "a later HELO resets the transaction as RSET does", nil, false, nil},
	{talking, "LHLO", stateIdentified, last, "RFC 2033 4.1", "LMTP's EHLO; an SMTP server answers 500, as an LMTP server does to HELO and EHLO", nil, false, nil},
	{beforeMessage, "STARTTLS", stateConnected, last, "RFC 3207 4, 4.2", "220, the TLS handshake, then the session starts over: the client greets again", nil, false, []*guard{guardNoTLSConfig, guardTLSActive}},
	{setOf(stateIdentified), "AUTH", stay, last, "RFC 4954 4", "once per session, not in a transaction; 334 challenges, then 235 or 535", nil, false, []*guard{guardNoAuthMechanism, guardAuthenticated, guardAuthInsecure}},
	{setOf(stateIdentified), "MAIL", stateMail, anywhere, "4.1.1.2, 3.3", "starts a mail transaction; nested MAIL is refused", nil, false, []*guard{guardRequireTLS, guardRequireAuth}},
	{setOf(stateMail, stateRcpt), "RCPT", stateRcpt, anywhere, "4.1.1.3, 3.3", "adds a forward-path; the state stays when it is refused", nil, false, nil},
	{setOf(stateRcpt), "DATA", stateIdentified, last, "4.1.1.4, 3.3", "354, then the message; the transaction ends whatever the outcome", nil, false, []*guard{guardArgument, guardBinaryMIME}},
	{setOf(stateMail), "DATA", stay, last, "3.3", "no recipient was accepted", replyNoValidRecipients, false, nil},
	{setOf(stateRcpt, stateChunk), "BDAT", stateChunk, anywhere, "RFC 3030 2", "a chunk of exactly the octets announced, 250 for each; refused or not, the octets are read", nil, true, nil},
	{setOf(stateRcpt, stateChunk), "BDAT LAST", stateIdentified, anywhere, "RFC 3030 2", "the last chunk: the message is delivered and the transaction ends", nil, false, nil},
	{afterHello, "RSET", stateIdentified, anywhere, "4.1.1.5", "aborts the transaction", nil, false, nil},
	{setOf(stateConnected), "RSET", stay, anywhere, "4.1.1.5, 4.1.4", "before HELO the session stays unidentified; RSET is still 250", nil, false, nil},
	{talking, "NOOP", stay, last, "4.1.1.9", "arguments are ignored", nil, false, nil},
	{talking | setOf(stateRefused), "QUIT", stay, last, "4.1.1.10, 3.1", "221, then the server closes the connection", nil, false, nil},
	{talking, "VRFY", stay, last, "4.1.1.6, 3.5.3", "252 unless Server.Verify answers", nil, false, nil},
	{talking, "EXPN", stay, last, "4.1.1.7, 3.5.2", "502 unless Server.Expand is set", nil, false, nil},
	{talking, "HELP", stay, last, "4.1.1.8", "214", nil, false, nil},
}

// notImplemented are verbs RFC 5321 names but this server does not
// implement: they get 502, not 500 (RFC 5321 4.2.4).
var notImplemented = map[string]bool{"TURN": true, "SEND": true, "SOML": true, "SAML": true}

// ruleIndex maps a (state, verb) pair to its rule; built once from
// stateTable.
var ruleIndex = func() map[stateVerb]*rule {
	m := make(map[stateVerb]*rule)
	for i := range stateTable {
		r := &stateTable[i]
		for s := state(0); s < numStates; s++ {
			if r.from.has(s) {
				m[stateVerb{s, r.verb}] = r
			}
		}
	}
	return m
}()

// knownVerbs holds every verb of the table, to tell an out-of-sequence
// command (503) from an unknown one (500).
var knownVerbs = func() map[string]bool {
	m := make(map[string]bool)
	for _, r := range stateTable {
		m[r.verb] = true
	}
	return m
}()

// verbPlaces maps each verb of the table to its place in a pipelined group;
// built once from stateTable, whose rows of one verb agree (a test checks).
var verbPlaces = func() map[string]place {
	m := make(map[string]place)
	for _, r := range stateTable {
		m[r.verb] = r.place
	}
	return m
}()

// placeOf returns where a command may stand in a pipelined group. A verb
// the table does not list, unknown or not implemented, is last: RFC 2920
// 3.1 makes that the rule for commands it does not name, and names TURN
// there itself. (It lets SEND, SOML and SAML stand anywhere; this server
// answers them 502, which no client pipelines behind.)
func placeOf(verb string) place {
	if p, ok := verbPlaces[verb]; ok {
		return p
	}
	return last
}

type stateVerb struct {
	state state
	verb  string
}

// lookup is the one place that consults the state table. It returns the
// rule for the command verb arg in the session's state, or the reply to send
// instead: 500 for an unknown verb, 502 for a verb this server does not
// implement, 503 for a command out of sequence, or the reply of the first of
// the rule's guards that holds, with that guard.
func lookup(c *conn, verb, arg string) (*rule, *guard, *Reply) {
	r, refusal := find(c.state, verb)
	if refusal != nil {
		return nil, nil, refusal
	}
	for _, g := range r.guards {
		if g.holds(c, arg) {
			return r, g, g.reply
		}
	}
	return r, nil, nil
}

// refuse answers a command that lookup refused. A refused BDAT is still
// followed by its chunk, which the client sends at once (RFC 3030 2):
// its octets are read and dropped, never taken for commands.
func refuse(c *conn, verb, arg string, refusal *Reply) {
	if verb == "BDAT" || verb == "BDAT LAST" {
		c.refuseChunk(arg, refusal)
		return
	}
	c.reply(refusal)
}

// find is lookup's first half: the rule for verb in state s, before its
// guards, or the reply to a command no rule allows.
func find(s state, verb string) (*rule, *Reply) {
	if r, ok := ruleIndex[stateVerb{s, verb}]; ok {
		return r, nil
	}
	switch {
	case s == stateRefused:
		// RFC 5321 3.1: after a 554 greeting, 503 to all but QUIT.
		return nil, replyBadSequence
	case knownVerbs[verb]:
		return nil, replyBadSequence
	case notImplemented[verb]:
		return nil, replyNotImplemented
	}
	return nil, replyUnrecognized
}
