package transcript

import (
	"bytes"
	"sort"
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
// says so), each server reply as its code and the class of its enhanced
// code only (its text and the rest of its enhanced code are the recorded
// server's own), a starttls event where TLS started,
// and the deliveries the session implies: each message whose end got 250
// (DATA, or BDAT chunks up to LAST), with the envelope of the MAIL and
// RCPT commands that got 2yz. The header gets "level: MUST" (a real
// client's ordinary session must work end to end: RFC 5321's basic
// transaction), "sink: yes" when the server accepted an address that no
// placeholder stands for (see Write), "needs:" for the extensions the
// client used, and "auth:" when secrets are masked.
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

	t.Header = append(t.Header, Field{Key: "level", Value: "MUST"})
	if w.sink {
		t.Header = append(t.Header, Field{Key: "sink", Value: "yes"})
	}
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
		// Only the class: the subject and detail the recording server
		// chose (2.1.0 after MAIL, 2.1.5 after RCPT) are its own, and
		// RFC 3463 lets another server choose otherwise.
		if m := replyEnhancedRe.FindString(last[4:]); m != "" {
			lp.Enhanced = strings.TrimSpace(m)[:1] + ".x.x"
		}
	}
	return ReplyPattern{Lines: []LinePattern{lp}}
}
