package transcript

import (
	"bytes"
	"encoding/base64"
	"sort"
	"strconv"
	"strings"
)

// Chunk is what one side of a recorded session sent in one read, in the
// order the recorder saw it, or the point where TLS started.
type Chunk struct {
	FromClient bool
	Data       []byte

	// StartTLS marks where client and server ran a TLS handshake after
	// STARTTLS (Data is empty): the chunks after it are the session
	// inside TLS, in the clear. It becomes a starttls event.
	StartTLS bool
}

// RecordOptions say what FromRecording cannot tell from the bytes.
type RecordOptions struct {
	// LMTP: the server spoke LMTP, which answers the end of a message
	// once per accepted recipient (RFC 2033 4.2).
	LMTP bool

	// TLS: the recorder saw the whole session in the clear, TLS
	// included (a server's own recorder; a proxy cannot), so each
	// delivery says whether its message came over TLS. ImplicitTLS: the
	// session ran inside TLS from its first byte (RFC 8314).
	TLS, ImplicitTLS bool

	// Password, when not empty, masks AUTH secrets (RFC 4954): in each
	// PLAIN or LOGIN exchange the password is replaced by Password when
	// the server accepted it, and by WrongPassword when it refused it,
	// re-encoded so that the exchange replays as it went; a response the
	// server could not decode becomes "!", which decodes no better; the
	// responses of other mechanisms become base64 of "masked". The
	// header then gets "auth: USER:Password" for the users that
	// authenticated, so that a replay authenticates them with Password.
	// Empty means the client's bytes are kept as they are, secrets
	// included.
	Password string
}

// WrongPassword replaces a password the server refused, when
// RecordOptions.Password masks secrets: the replay must be refused too.
const WrongPassword = "wrong-password"

// FromRecording makes a transcript of a recorded session, for Write: the
// client's bytes exactly (C: and C! lines; AUTH secrets masked if opt
// says so), each server reply as its code and enhanced code only (its
// text is the recorded server's own), a starttls event where TLS started,
// and the deliveries the session implies: each message whose end got 250
// (DATA, or BDAT chunks up to LAST), with the envelope of the MAIL and
// RCPT commands that got 2yz. The header gets "needs:" for the
// extensions the client used, and "auth:" when secrets are masked.
// Nothing is added for the timing of the recording: client bytes are
// sent when the next reply is awaited, which is how a client that waits
// for replies behaves.
//
// The caller sets Comment and Ref to say what the recording is, and the
// header fields that configure the server as it was.
func FromRecording(name string, chunks []Chunk, opt RecordOptions) *Transcript {
	t := &Transcript{Name: name}
	// The client's bytes, all of them, and where each Send step and each
	// TLS epoch begins in them.
	var client, server []byte
	type span struct{ start, end int }
	var sends []span
	epochs := []int{0}
	var pendingServer []byte
	for _, c := range chunks {
		switch {
		case c.StartTLS:
			t.Steps = append(t.Steps, Step{Kind: StartTLS})
			epochs = append(epochs, len(client))
		case c.FromClient:
			sends = append(sends, span{len(client), len(client) + len(c.Data)})
			t.Steps = append(t.Steps, Step{Kind: Send})
			client = append(client, c.Data...)
		default:
			server = append(server, c.Data...)
			pendingServer = append(pendingServer, c.Data...)
			var replies [][]string
			replies, pendingServer = splitReplies(pendingServer)
			for _, r := range replies {
				t.Steps = append(t.Steps, Step{Kind: Expect, Reply: replyPatternOf(r)})
			}
		}
	}
	replies, _ := splitReplies(server)
	w := &walker{opt: opt, replies: replies, tls: opt.ImplicitTLS, needs: map[string]bool{}}
	w.walk(client, epochs)
	t.Deliveries = w.out
	// A read that held two commands came from a client that did not wait
	// for the first reply: it pipelined (RFC 2920).
	for _, sp := range sends {
		n := 0
		for _, c := range w.commands {
			if sp.start <= c && c < sp.end {
				n++
			}
		}
		if n > 1 {
			w.needs["PIPELINING"] = true
		}
	}

	// Masking changes lengths: each Send step keeps its bytes, edited.
	edited, newOff := applyEdits(client, w.edits)
	i := 0
	for j := range t.Steps {
		if t.Steps[j].Kind == Send {
			s := sends[i]
			t.Steps[j].Data = append([]byte(nil), edited[newOff(s.start):newOff(s.end)]...)
			i++
		}
	}
	t.Steps = splitSends(t.Steps)

	if len(w.needs) > 0 {
		var kw []string
		for k := range w.needs {
			kw = append(kw, k)
		}
		sort.Strings(kw)
		t.Header = append(t.Header, Field{Key: "needs", Value: strings.Join(kw, " ")})
	}
	if opt.Password != "" && len(w.users) > 0 {
		var accounts []string
		for _, u := range w.users {
			accounts = append(accounts, u+":"+opt.Password)
		}
		t.Header = append(t.Header, Field{Key: "auth", Value: strings.Join(accounts, ",")})
	}
	return t
}

// edit replaces client bytes [start, end) with data.
type edit struct {
	start, end int
	data       []byte
}

// applyEdits returns b with the edits (in order, not overlapping) made, and
// a function mapping an offset in b to one in the result; an offset inside
// an edited range maps to the end of its replacement.
func applyEdits(b []byte, edits []edit) ([]byte, func(int) int) {
	var out []byte
	prev := 0
	for _, e := range edits {
		out = append(out, b[prev:e.start]...)
		out = append(out, e.data...)
		prev = e.end
	}
	out = append(out, b[prev:]...)
	return out, func(off int) int {
		delta := 0
		for _, e := range edits {
			switch {
			case off >= e.end:
				delta += len(e.data) - (e.end - e.start)
			case off > e.start:
				return e.start + delta + len(e.data)
			}
		}
		return off + delta
	}
}

// splitSends merges adjacent Send steps and splits them again at CRLF, so
// that each text line becomes one C: line whatever the TCP reads were.
func splitSends(steps []Step) []Step {
	var out []Step
	var buf []byte
	flush := func() {
		for len(buf) > 0 {
			n := len(buf)
			if i := bytes.Index(buf, []byte("\r\n")); i >= 0 {
				n = i + 2
			}
			out = append(out, Step{Kind: Send, Data: append([]byte(nil), buf[:n]...)})
			buf = buf[n:]
		}
	}
	for _, s := range steps {
		if s.Kind == Send {
			buf = append(buf, s.Data...)
			continue
		}
		flush()
		out = append(out, s)
	}
	flush()
	return out
}

// splitReplies cuts complete replies off b and returns them, lines without
// CRLF, with the bytes of an unfinished reply.
func splitReplies(b []byte) (replies [][]string, rest []byte) {
	var cur []string
	start := 0
	for {
		i := bytes.Index(b[start:], []byte("\r\n"))
		if i < 0 {
			return replies, b[start:]
		}
		l := string(b[start : start+i])
		start += i + 2
		cur = append(cur, l)
		if len(l) < 4 || l[3] != '-' {
			replies = append(replies, cur)
			cur = nil
			b, start = b[start:], 0
		}
	}
}

func replyPatternOf(reply []string) ReplyPattern {
	last := reply[len(reply)-1]
	lp := LinePattern{Codes: []string{last[:min(3, len(last))]}}
	if !codeRe.MatchString(lp.Codes[0]) {
		lp.Codes[0] = "xxx"
	}
	if len(last) > 4 {
		if m := replyEnhancedRe.FindString(last[4:]); m != "" {
			lp.Enhanced = strings.TrimSpace(m)
		}
	}
	return ReplyPattern{Lines: []LinePattern{lp}}
}

// walker replays the client's commands against the server's replies, one
// reply per command in order (which pipelining keeps, RFC 2920 3.1), to
// find the messages the server accepted, the AUTH secrets to mask and the
// extensions the client used.
type walker struct {
	opt     RecordOptions
	replies [][]string

	hello string
	cur   *Delivery
	bdat  []byte // BDAT chunks of the current message so far
	bad   bool   // a chunk of the current message was refused
	tls   bool
	auth  string // the AUTH identity, forgotten at STARTTLS (RFC 3207 4.2)

	out      []Delivery
	edits    []edit
	commands []int    // where each command line starts in the client's bytes
	users    []string // who authenticated, in order, once each
	needs    map[string]bool
}

// next returns the last line of the next reply, "" when there is none.
func (w *walker) next() string {
	if len(w.replies) == 0 {
		return ""
	}
	r := w.replies[0]
	w.replies = w.replies[1:]
	return r[len(r)-1]
}

// walk goes through client, whose TLS epochs start at the offsets in
// epochs: the bytes a client sent in the clear after STARTTLS, before the
// handshake, are dropped by the server unread (RFC 3207 4.2: a fresh
// session starts), and so skipped here.
func (w *walker) walk(client []byte, epochs []int) {
	w.next() // the greeting
	for i, start := range epochs {
		end := len(client)
		if i+1 < len(epochs) {
			end = epochs[i+1]
		}
		if i > 0 {
			w.tls, w.auth, w.hello, w.cur = true, "", "", nil
		}
		w.epoch(client[:end], start, i == 0)
	}
}

// line returns the line at *pos without its CRLF, and moves past it; false
// when no complete line is left.
func line(b []byte, pos *int) (string, bool) {
	i := bytes.Index(b[*pos:], []byte("\r\n"))
	if i < 0 {
		return "", false
	}
	l := string(b[*pos : *pos+i])
	*pos += i + 2
	return l, true
}

// epoch walks client[pos:] up to its end, or up to a STARTTLS that the
// server accepted.
func (w *walker) epoch(client []byte, pos int, first bool) {
	if first {
		pos = skipProxy(client)
	}
	for {
		start := pos
		l, ok := line(client, &pos)
		if !ok {
			return
		}
		w.commands = append(w.commands, start)
		verb, arg, _ := strings.Cut(l, " ")
		verb = strings.ToUpper(verb)
		reply := w.next()
		ok = strings.HasPrefix(reply, "2")
		switch verb {
		case "HELO", "EHLO", "LHLO":
			if ok {
				w.hello, w.cur = arg, nil
			}
		case "RSET":
			w.cur = nil
		case "STARTTLS":
			if strings.HasPrefix(reply, "220") {
				return
			}
		case "MAIL":
			if ok {
				d := &Delivery{Hello: w.hello, Mail: pathArg(arg, "FROM:"), Auth: w.auth}
				if w.opt.TLS {
					d.TLS = map[bool]string{true: "yes", false: "no"}[w.tls]
				}
				w.cur, w.bdat, w.bad = d, nil, false
			}
			w.paramNeeds(arg)
		case "RCPT":
			if ok && w.cur != nil {
				w.cur.Rcpts = append(w.cur.Rcpts, pathArg(arg, "TO:"))
			}
			w.paramNeeds(arg)
		case "DATA":
			if !strings.HasPrefix(reply, "354") {
				continue
			}
			var data []byte
			if bytes.HasPrefix(client[pos:], []byte(".\r\n")) {
				pos += 3
			} else {
				i := bytes.Index(client[pos:], []byte("\r\n.\r\n"))
				if i < 0 {
					return // the client went away in the middle
				}
				data = unstuff(client[pos : pos+i+2])
				pos += i + 5
			}
			w.end(data)
		case "BDAT":
			// RFC 3030 2: the chunk follows the command line at once,
			// whatever the reply.
			w.needs["CHUNKING"] = true
			size, last, _ := strings.Cut(arg, " ")
			n, err := strconv.Atoi(size)
			if err != nil || n < 0 || pos+n > len(client) {
				return // the server closes the connection, or the client went away
			}
			chunk := client[pos : pos+n]
			pos += n
			if !strings.EqualFold(strings.TrimSpace(last), "LAST") {
				if ok {
					w.bdat = append(w.bdat, chunk...)
				} else {
					w.bad = true
				}
				continue
			}
			w.replies = append([][]string{{reply}}, w.replies...) // end reads it
			data := append(w.bdat, chunk...)
			if w.bad {
				w.cur = nil
			}
			w.end(data)
		case "AUTH":
			pos = w.authExchange(client, start, pos, arg, reply)
		}
	}
}

// end takes the replies to the end of a message (one per accepted
// recipient with LMTP) and records the delivery if one of them is 250.
func (w *walker) end(data []byte) {
	n := 1
	if w.opt.LMTP && w.cur != nil && len(w.cur.Rcpts) > 1 {
		n = len(w.cur.Rcpts)
	}
	accepted := false
	for ; n > 0; n-- {
		if strings.HasPrefix(w.next(), "250") {
			accepted = true
		}
	}
	if accepted && w.cur != nil {
		w.cur.Data = []DataPart{{Exact: data}}
		w.out = append(w.out, *w.cur)
	}
	w.cur, w.bdat, w.bad = nil, nil, false
}

// unstuff undoes dot-stuffing (RFC 5321 4.5.2) in content that ends with CRLF.
func unstuff(b []byte) []byte {
	var out []byte
	for _, l := range bytes.SplitAfter(b, []byte("\r\n")) {
		out = append(out, bytes.TrimPrefix(l, []byte("."))...)
	}
	return out
}

// paramNeeds notes the extensions a MAIL or RCPT parameter needs.
func (w *walker) paramNeeds(arg string) {
	fields := strings.Fields(arg)
	for _, p := range fields[min(1, len(fields)):] {
		kw, v, _ := strings.Cut(strings.ToUpper(p), "=")
		switch kw {
		case "SIZE", "SMTPUTF8":
			w.needs[kw] = true
		case "BODY":
			if v == "8BITMIME" || v == "BINARYMIME" {
				w.needs[v] = true
			}
		case "RET", "ENVID", "NOTIFY", "ORCPT":
			w.needs["DSN"] = true
		case "AUTH":
			w.needs["AUTH"] = true
		}
	}
}

// authExchange follows an AUTH command (RFC 4954 4) whose line is
// client[start:pos] and whose first reply is reply: each 334 asks for one
// more line. It masks the password when the options say so, and returns
// where the commands go on.
func (w *walker) authExchange(client []byte, start, pos int, arg, reply string) int {
	mech, initial, hasInitial := strings.Cut(arg, " ")
	mech = strings.ToUpper(mech)
	// The responses: where each is in client, and its text.
	type response struct {
		start, end int
		text       string
	}
	var resps []response
	if hasInitial {
		end := pos - 2
		resps = append(resps, response{end - len(initial), end, initial})
	}
	for strings.HasPrefix(reply, "334") {
		rs := pos
		l, ok := line(client, &pos)
		if !ok {
			return pos
		}
		resps = append(resps, response{rs, pos - 2, l})
		reply = w.next()
	}
	if strings.HasPrefix(reply, "235") || strings.HasPrefix(reply, "535") || len(resps) > 0 {
		w.needs["AUTH="+mech] = true
	}
	success := strings.HasPrefix(reply, "2")
	password := WrongPassword
	if success {
		password = w.opt.Password
	}
	b64 := base64.StdEncoding
	user := ""
	for i, r := range resps {
		if r.text == "*" || r.text == "=" {
			continue // a cancel, or an empty response: no secret
		}
		decoded, err := b64.DecodeString(r.text)
		masked := "!"
		switch {
		case err != nil:
		case mech == "PLAIN":
			// RFC 4616 2: [authzid] NUL authcid NUL passwd.
			parts := strings.Split(string(decoded), "\x00")
			if len(parts) == 3 {
				user = parts[1]
				if parts[0] != "" {
					user = parts[0] // the identity the server then uses
				}
				masked = b64.EncodeToString([]byte(parts[0] + "\x00" + parts[1] + "\x00" + password))
			} else {
				masked = b64.EncodeToString([]byte("masked"))
			}
		case mech == "LOGIN" && i == 0:
			// The user name: no secret.
			user, masked = string(decoded), r.text
		case mech == "LOGIN":
			masked = b64.EncodeToString([]byte(password))
		default:
			masked = b64.EncodeToString([]byte("masked"))
		}
		if w.opt.Password != "" && masked != r.text {
			w.edits = append(w.edits, edit{r.start, r.end, []byte(masked)})
		}
	}
	if success && user != "" {
		w.auth = user
		if !contains(w.users, user) {
			w.users = append(w.users, user)
		}
	}
	return pos
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

// skipProxy returns the length of a PROXY protocol header at the start of
// b (v1: a line; v2: a binary header), which gets no reply, or 0.
func skipProxy(b []byte) int {
	const v2 = "\r\n\r\n\x00\r\nQUIT\n"
	switch {
	case bytes.HasPrefix(b, []byte(v2)) && len(b) >= 16:
		return min(len(b), 16+(int(b[14])<<8|int(b[15])))
	case bytes.HasPrefix(b, []byte("PROXY ")):
		if i := bytes.Index(b, []byte("\r\n")); i >= 0 {
			return i + 2
		}
	}
	return 0
}

// pathArg turns "FROM:<a@b> size=1" into "<a@b> SIZE=1": the path as
// sent, less a source route (RFC 5321 4.1.2, which the server drops), and
// the parameters with their keywords in upper case, as the server hands
// them on (RFC 5321 2.4: keywords are case-insensitive).
func pathArg(arg, prefix string) string {
	if len(arg) >= len(prefix) && strings.EqualFold(arg[:len(prefix)], prefix) {
		arg = arg[len(prefix):]
	}
	fields := strings.Fields(arg)
	if len(fields) == 0 {
		return ""
	}
	if p := fields[0]; strings.HasPrefix(p, "<@") {
		if i := strings.Index(p, ":"); i > 0 {
			fields[0] = "<" + p[i+1:]
		}
	}
	for i, p := range fields[1:] {
		kw, v, hasV := strings.Cut(p, "=")
		fields[i+1] = strings.ToUpper(kw)
		if hasV {
			fields[i+1] += "=" + v
		}
	}
	return strings.Join(fields, " ")
}
