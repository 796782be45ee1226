package transcript

// The walk through a recorded session that FromRecording makes to find
// what the bytes alone do not say: which messages were delivered, where
// the AUTH secrets are, which extensions the client used. Write walks the
// session again to find where the placeholders go.

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"sort"
	"strconv"
	"strings"

	"smtpd/internal/proxyproto"
)

// walker replays the client's commands against the server's replies, one
// reply per command in order (which pipelining keeps, RFC 2920 3.1), to
// find the messages the server accepted, the AUTH secrets to mask, the
// extensions the client used and the places for placeholders.
type walker struct {
	opt     RecordOptions
	replies [][]string

	hello   string
	cur     *Delivery
	bdat    []byte // BDAT chunks of the current message so far
	bad     bool   // a chunk of the current message was refused
	chunked bool   // the current message has had its first BDAT chunk
	marked  bool   // and that chunk got ${mark}
	tls     bool
	auth    string // the AUTH identity, forgotten at STARTTLS (RFC 3207 4.2)

	out      []Delivery
	outMarks []marks // for each delivery in out, the placeholders its message got
	edits    []edit
	commands []int    // where each command line starts in the client's bytes
	users    []string // who authenticated, in order, once each
	needs    map[string]bool

	// places are the placeholders for the client's bytes, in order: an
	// edit whose data is a placeholder's name, ${from} for the bytes of
	// alice@example.org and so on, or ${mark} for no bytes.
	places []edit
	// sink: an accepted MAIL or RCPT named an address that no
	// placeholder stands for.
	sink bool
}

// marks says which placeholders a message got in the session: ${mark} at
// its start, ${tag} in its Subject field.
type marks struct{ mark, tag bool }

// Placeholders stand for the in-process runner's addresses (DefaultVars)
// wherever a recording names them; see conformance/testdata/README.md.
const (
	markPlaceholder = "${mark}"
	tagPlaceholder  = "${tag}"
)

// addressPlaceholder returns the placeholder that stands for addr in the
// in-process runner, "" when none does.
func addressPlaceholder(addr string) string {
	switch addr {
	case "":
		return ""
	case DefaultVars.From:
		return "${from}"
	case DefaultVars.Rcpt:
		return "${rcpt}"
	case DefaultVars.Rcpt2:
		return "${rcpt2}"
	}
	return ""
}

// pathAddress finds the mailbox of the first path in angle brackets in s
// (a MAIL or RCPT command line, or a delivery's mail: or rcpt: value),
// less a source route (RFC 5321 4.1.2), and returns it with its offset
// in s; ok is false when s has no path.
func pathAddress(s string) (addr string, off int, ok bool) {
	i := strings.IndexByte(s, '<')
	if i < 0 {
		return "", 0, false
	}
	j := strings.IndexByte(s[i:], '>')
	if j < 0 {
		return "", 0, false
	}
	off, addr = i+1, s[i+1:i+j]
	if strings.HasPrefix(addr, "@") {
		if k := strings.IndexByte(addr, ':'); k >= 0 {
			off, addr = off+k+1, addr[k+1:]
		}
	}
	return addr, off, true
}

// placeAddress puts the placeholder for the address of the MAIL or RCPT
// line l, which starts at start in the client's bytes, if one stands for
// it; accepted says whether the server took it (2yz), and an accepted
// address that no placeholder stands for makes the case need a sink.
func (w *walker) placeAddress(start int, l string, accepted bool) {
	_, arg, _ := strings.Cut(l, " ")
	addr, off, ok := pathAddress(arg)
	if !ok {
		w.sink = w.sink || accepted // a path without brackets, taken as it was
		return
	}
	off += len(l) - len(arg)
	if ph := addressPlaceholder(addr); ph != "" {
		w.places = append(w.places, edit{start + off, start + off + len(addr), []byte(ph)})
	} else if accepted && addr != "" {
		w.sink = true
	}
}

// subjectText returns the offset in msg of the text of the first Subject
// field in its header section (after "Subject:" and the blanks that
// follow), or -1 when the header has none. dotStuffed: msg is the text
// of DATA as sent (RFC 5321 4.5.2), whose lines may carry an extra dot.
func subjectText(msg []byte, dotStuffed bool) int {
	pos := 0
	for {
		i := bytes.Index(msg[pos:], []byte("\r\n"))
		if i < 0 {
			return -1
		}
		l, skip := msg[pos:pos+i], 0
		if dotStuffed && bytes.HasPrefix(l, []byte(".")) {
			l, skip = l[1:], 1
		}
		if len(l) == 0 {
			return -1 // the end of the header section
		}
		if len(l) >= 8 && strings.EqualFold(string(l[:8]), "Subject:") {
			k := 8
			for k < len(l) && (l[k] == ' ' || l[k] == '\t') {
				k++
			}
			return pos + skip + k
		}
		pos += i + 2
	}
}

// sortedPlaces returns w.places in order of offset.
func (w *walker) sortedPlaces() []edit {
	sort.SliceStable(w.places, func(i, j int) bool { return w.places[i].start < w.places[j].start })
	return w.places
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
			w.tls, w.auth, w.hello, w.cur, w.chunked = true, "", "", nil, false
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
				w.hello, w.cur, w.chunked = arg, nil, false
			}
		case "RSET":
			w.cur, w.chunked = nil, false
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
			w.chunked = false
			w.placeAddress(start, l, ok)
			w.paramNeeds(arg)
		case "RCPT":
			if ok && w.cur != nil {
				w.cur.Rcpts = append(w.cur.Rcpts, pathArg(arg, "TO:"))
			}
			w.placeAddress(start, l, ok)
			w.paramNeeds(arg)
		case "DATA":
			if !strings.HasPrefix(reply, "354") {
				continue
			}
			// The message is client[pos:end], up to the CRLF before the
			// lone dot; all that is left when the client went away in
			// the middle.
			end, complete := len(client), true
			if bytes.HasPrefix(client[pos:], []byte(".\r\n")) {
				end = pos
			} else if i := bytes.Index(client[pos:], []byte("\r\n.\r\n")); i >= 0 {
				end = pos + i + 2
			} else {
				complete = false
			}
			m := marks{}
			if pos < len(client) {
				m = marks{mark: true}
				w.places = append(w.places, edit{pos, pos, []byte(markPlaceholder)})
				if k := subjectText(client[pos:end], true); k >= 0 {
					m.tag = true
					w.places = append(w.places, edit{pos + k, pos + k, []byte(tagPlaceholder)})
				}
			}
			if !complete {
				return
			}
			data := unstuff(client[pos:end])
			pos = end + 3
			w.end(data, m)
		case "BDAT":
			// RFC 3030 2: the chunk follows the command line at once,
			// whatever the reply.
			w.needs["CHUNKING"] = true
			size, last, _ := strings.Cut(arg, " ")
			n, err := strconv.Atoi(size)
			if err != nil || n < 0 {
				return // the server closes the connection
			}
			if !w.chunked {
				// The first chunk of a message starts with ${mark}, and
				// its size counts it: ${mark+N}. A size not written as
				// plain decimal (+3, 03) is kept as sent and the message
				// left unmarked, since ${mark+N} would expand to other
				// bytes. No placeholder counts ${tag} in a size, so a
				// message in chunks gets no tag.
				w.chunked, w.marked = true, size == strconv.Itoa(n)
				if w.marked {
					w.places = append(w.places, edit{start + 5, start + 5 + len(size), []byte("${mark+" + size + "}")},
						edit{pos, pos, []byte(markPlaceholder)})
				}
			}
			if pos+n > len(client) {
				return // the client went away
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
			w.end(data, marks{mark: w.marked})
		case "AUTH":
			pos = w.authExchange(client, start, pos, arg, reply)
		}
	}
}

// end takes the replies to the end of a message (one per accepted
// recipient with LMTP) and records the delivery if one of them is 250;
// m says which placeholders the message got in the session.
func (w *walker) end(data []byte, m marks) {
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
		w.outMarks = append(w.outMarks, m)
	}
	w.cur, w.bdat, w.bad, w.chunked = nil, nil, false, false
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
// b, which gets no reply, or 0.
func skipProxy(b []byte) int {
	_, _, n, err := proxyproto.ReadHeader(bufio.NewReader(bytes.NewReader(b)))
	if err != nil {
		return 0
	}
	return n
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
