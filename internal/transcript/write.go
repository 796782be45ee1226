package transcript

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Write renders t in the transcript format, so that Parse(Write(t)) gives t
// back. Identical consecutive steps are folded with a repeat count; client
// bytes are written as C: lines where they are text lines and as C! with
// Go-quoted strings where they are not (bare CR or LF, NUL, a line without
// its CRLF, trailing spaces an editor would strip).
//
// Write puts in the placeholders of conformance/testdata/README.md where
// they expand, with the in-process runner's values (DefaultVars), to the
// bytes t holds, so that the file replays byte for byte in-process and
// smtpconform can fill them for a server on the network:
//
//   - the addresses of DefaultVars in MAIL and RCPT command lines (pipelined
//     or not) and in the deliveries' mail: and rcpt: lines become ${from},
//     ${rcpt} and ${rcpt2};
//   - each message the client sent starts with ${mark}: the first bytes
//     after the 354 reply to DATA, or the first BDAT chunk's data, whose
//     size becomes ${mark+N}; so does the message of each delivery;
//   - the text of the first Subject field in a message's header section
//     starts with ${tag}, in the session and in the delivery, except in a
//     message sent in BDAT chunks: no placeholder counts ${tag} in a
//     chunk's size.
//
// Where the session or a message went (which line is a command, where a
// message starts) comes from a walk of the steps, with the reply codes of
// the Expect steps standing for the replies, as FromRecording walks a
// recording. Inside C! and D! strings the placeholders stand within the
// quotes. Client bytes that hold "${" themselves are written as C! (or D!)
// strings cut between the "$" and the "{" ("a$" + "{b}"): the parser
// expands each string on its own, so no placeholder is read there.
//
// The header fields come in t's order, except that the level:, profile:
// and sink: fields a program made (Line 0, as FromRecording's are) come
// first, after ref:, where the cases write them; a parsed file's header
// keeps its order.
func Write(w io.Writer, t *Transcript) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "# %s\n", oneLine(t.Comment))
	fmt.Fprintf(bw, "ref: %s\n", oneLine(t.Ref))
	var first, rest []Field
	for _, f := range t.Header {
		if f.Line == 0 && (f.Key == "level" || f.Key == "profile" || f.Key == "sink") {
			first = append(first, f)
		} else {
			rest = append(rest, f)
		}
	}
	for _, f := range append(first, rest...) {
		fmt.Fprintf(bw, "%s: %s\n", f.Key, oneLine(f.Value))
	}
	bw.WriteString("\n")
	places, msgs := placesOf(t)
	lines := make([][]string, len(t.Steps))
	for i, s := range t.Steps {
		lines[i] = stepLinesWith(s, places[i])
	}
	for i := 0; i < len(t.Steps); {
		n := 1
		for i+n < len(t.Steps) && t.Steps[i].Kind == t.Steps[i+n].Kind && slices.Equal(lines[i], lines[i+n]) {
			n++
		}
		if n > 1 && len(lines[i]) == 1 {
			fmt.Fprintf(bw, "%d* %s\n", n, lines[i][0])
		} else {
			for j := 0; j < n; j++ {
				for _, l := range lines[i] {
					bw.WriteString(l + "\n")
				}
			}
		}
		i += n
	}
	for i, d := range t.Deliveries {
		bw.WriteString("\n== delivery\n")
		if d.Hello != "" {
			fmt.Fprintf(bw, "hello: %s\n", d.Hello)
		}
		if d.TLS != "" {
			fmt.Fprintf(bw, "tls: %s\n", d.TLS)
		}
		if d.Auth != "" {
			fmt.Fprintf(bw, "auth: %s\n", oneLine(d.Auth))
		}
		fmt.Fprintf(bw, "mail: %s\n", withAddressPlaceholder(d.Mail))
		for _, r := range d.Rcpts {
			fmt.Fprintf(bw, "rcpt: %s\n", withAddressPlaceholder(r))
		}
		m := marks{mark: true, tag: true}
		if msgs != nil {
			m = msgs[i]
		}
		if len(d.Data) == 0 && m.mark {
			bw.WriteString("D! " + strconv.Quote(markPlaceholder) + "\n")
		}
		marked := false
		for _, p := range d.Data {
			if p.Line != nil {
				fmt.Fprintf(bw, "D~ %s\n", unwrap(p.Line.String(), "^(?:", ")\r\n$"))
				continue
			}
			// The first exact part starts where the message does, after
			// any Received field matched by D~.
			var ins []edit
			if !marked {
				marked = true
				if m.mark {
					ins = append(ins, edit{0, 0, []byte(markPlaceholder)})
				}
				if k := subjectText(p.Exact, false); m.tag && k >= 0 {
					ins = append(ins, edit{k, k, []byte(tagPlaceholder)})
				}
			}
			for _, l := range textLines(p.Exact, ins) {
				bw.WriteString("D" + l[1:] + "\n")
			}
		}
	}
	return bw.Flush()
}

// withAddressPlaceholder returns a delivery's mail: or rcpt: value with
// its address replaced by the placeholder that stands for it, if any.
func withAddressPlaceholder(path string) string {
	addr, off, ok := pathAddress(path)
	if ph := addressPlaceholder(addr); ok && ph != "" {
		return path[:off] + ph + path[off+len(addr):]
	}
	return path
}

// placesOf walks t's session as FromRecording walks a recording and
// returns, for each step, the placeholders in its bytes (offsets in its
// Data, in order), and for each delivery which placeholders its message
// got in the session, or nil when the walk does not find the deliveries t
// lists.
func placesOf(t *Transcript) ([][]edit, []marks) {
	var client []byte
	var replies [][]string
	epochs := []int{0}
	starts := make([]int, len(t.Steps))
	for i, s := range t.Steps {
		starts[i] = len(client)
		switch s.Kind {
		case Send:
			client = append(client, s.Data...)
		case StartTLS:
			epochs = append(epochs, len(client))
		case Expect:
			replies = append(replies, []string{replyOf(s.Reply)})
		}
	}
	lmtp, _ := t.Get("lmtp")
	w := &walker{opt: RecordOptions{LMTP: lmtp == "yes"}, replies: replies, needs: map[string]bool{}}
	w.walk(client, epochs)

	// The Send steps with bytes, in order; a place belongs to the one
	// whose bytes it starts in, and the last takes one at the very end.
	var sends []int
	for i, s := range t.Steps {
		if s.Kind == Send && len(s.Data) > 0 {
			sends = append(sends, i)
		}
	}
	places := make([][]edit, len(t.Steps))
	j := 0
	for _, p := range w.sortedPlaces() {
		for j < len(sends)-1 && starts[sends[j]]+len(t.Steps[sends[j]].Data) <= p.start {
			j++
		}
		if j >= len(sends) {
			break
		}
		i := sends[j]
		off, n := starts[i], len(t.Steps[i].Data)
		if p.start < off || p.end > off+n {
			continue // across two steps: left as it is
		}
		places[i] = append(places[i], edit{p.start - off, p.end - off, p.data})
	}
	if len(w.out) != len(t.Deliveries) {
		return places, nil
	}
	return places, w.outMarks
}

// replyOf stands for a reply the pattern matches, as the walk reads it:
// the first code, and the enhanced code.
func replyOf(rp ReplyPattern) string {
	if len(rp.Lines) == 0 {
		return ""
	}
	lp := rp.Lines[len(rp.Lines)-1]
	code := "xxx"
	if len(lp.Codes) > 0 {
		code = lp.Codes[0]
	}
	return strings.TrimSpace(code + " " + lp.Enhanced)
}

func oneLine(s string) string { return strings.NewReplacer("\r", " ", "\n", " ").Replace(s) }

func unwrap(s, prefix, suffix string) string {
	return strings.TrimSuffix(strings.TrimPrefix(s, prefix), suffix)
}

// stepLines renders one step.
func stepLines(s Step) []string { return stepLinesWith(s, nil) }

// stepLinesWith renders one step, with the placeholders in places for its
// bytes.
func stepLinesWith(s Step, places []edit) []string {
	switch s.Kind {
	case Send:
		return textLines(s.Data, places)
	case Expect:
		var lines []string
		for _, lp := range s.Reply.Lines {
			l := "S: " + strings.Join(lp.Codes, "|")
			if s.Reply.OrClosed {
				l += "|closed"
			}
			if lp.More {
				l += "-"
			} else if lp.Enhanced != "" || lp.Text != nil {
				l += " "
			}
			if lp.Enhanced != "" {
				l += lp.Enhanced
				if lp.Text != nil {
					l += " "
				}
			}
			if lp.Text != nil {
				l += lp.Text.String()
			}
			lines = append(lines, l)
		}
		return lines
	case Contains:
		return []string{"S+ " + unwrap(s.Pattern.String(), "^(?:", ")$")}
	case Lacks:
		return []string{"S- " + unwrap(s.Pattern.String(), "^(?:", ")$")}
	case Pause:
		return []string{"pause " + s.Duration.String()}
	case Closed:
		return []string{"closed within " + s.Duration.String()}
	case Silent:
		return []string{"silent for " + s.Duration.String()}
	}
	return []string{s.Kind.String()}
}

// textLines renders client bytes as "C: line" for each text line ending in
// CRLF and "C! \"...\"" for the rest, with the placeholders in places (in
// order, offsets in b; a replacement never crosses a line end) written
// where they stand. Literal "${" goes into C! strings cut between the "$"
// and the "{", so that the parser, which expands each string on its own,
// does not take it for a placeholder (see Write).
func textLines(b []byte, places []edit) []string {
	var lines []string
	var raw []segment
	flushRaw := func() {
		if len(raw) > 0 {
			lines = append(lines, "C! "+quoteSegments(raw))
			raw = nil
		}
	}
	if len(b) == 0 && len(places) > 0 {
		return []string{"C! " + quoteSegments(segments(b, places))}
	}
	k := 0
	for pos := 0; pos < len(b); {
		i := bytes.Index(b[pos:], []byte("\r\n"))
		end := len(b)
		if i >= 0 {
			end = pos + i + 2
		}
		// The places in this line; the last line takes one at its end.
		var in []edit
		for ; k < len(places) && (places[k].start < end || end == len(b)); k++ {
			p := places[k]
			in = append(in, edit{p.start - pos, p.end - pos, p.data})
		}
		segs := segments(b[pos:end], in)
		if i >= 0 && isTextLine(b[pos:pos+i]) && !bytes.Contains(literal(segs), []byte("${")) {
			flushRaw()
			var text []byte
			for _, s := range segs {
				text = append(text, s.data...)
			}
			if text := string(bytes.TrimSuffix(text, []byte("\r\n"))); text == "" {
				lines = append(lines, "C:")
			} else {
				lines = append(lines, "C: "+text)
			}
		} else {
			raw = append(raw, segs...)
		}
		pos = end
	}
	flushRaw()
	return lines
}

// segment is a piece of a line as written: client bytes, or a placeholder.
type segment struct {
	data        []byte
	placeholder bool
}

// segments cuts b at the places (in order, offsets in b), each of which
// replaces its bytes with a placeholder. A place that overlaps the one
// before, or goes past b, is left out.
func segments(b []byte, places []edit) []segment {
	var out []segment
	prev := 0
	for _, p := range places {
		if p.start < prev || p.end < p.start || p.end > len(b) {
			continue
		}
		if p.start > prev {
			out = append(out, segment{data: b[prev:p.start]})
		}
		out = append(out, segment{data: p.data, placeholder: true})
		prev = p.end
	}
	if prev < len(b) {
		out = append(out, segment{data: b[prev:]})
	}
	return out
}

// literal returns the client bytes of segs, the placeholders left out: what
// the parser sees of them in-process, where ${mark} and ${tag} are empty.
func literal(segs []segment) []byte {
	var out []byte
	for _, s := range segs {
		if !s.placeholder {
			out = append(out, s.data...)
		}
	}
	return out
}

// quoteSegments renders segs as Go strings joined by "+", placeholders
// inside the quotes, cut so that no string's client bytes hold "${", even
// with the placeholders between them taken out.
func quoteSegments(segs []segment) string {
	var strs []string
	var cur []byte
	dollar := false // the last client byte in cur is "$"
	for _, s := range segs {
		if s.placeholder {
			cur = append(cur, s.data...)
			continue
		}
		for _, c := range s.data {
			if c == '{' && dollar {
				strs = append(strs, strconv.Quote(string(cur)))
				cur = nil
			}
			cur, dollar = append(cur, c), c == '$'
		}
	}
	strs = append(strs, strconv.Quote(string(cur)))
	return strings.Join(strs, " + ")
}

// isTextLine reports whether a C: line can carry b: valid UTF-8 without
// control characters but tab, not starting or ending with a space (which
// textAfter or an editor would eat).
func isTextLine(b []byte) bool {
	if !utf8.Valid(b) || len(b) > 0 && (b[0] == ' ' || b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		return false
	}
	for _, c := range b {
		if c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}
