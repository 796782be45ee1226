package transcript

import (
	"bytes"
	"strings"
)

// Chunk is what one side of a recorded session sent in one read, in the
// order the recorder saw it.
type Chunk struct {
	FromClient bool
	Data       []byte
}

// FromRecording makes a transcript of a recorded session, for Write: the
// client's bytes exactly (C: and C! lines), each server reply as its code
// and enhanced code only (its text is the recorded server's own), and the
// deliveries the session implies: each DATA whose final reply was 250,
// with the envelope of the MAIL and RCPT commands that got 2yz. Nothing
// is added for the timing of the recording: client bytes are sent when
// the next reply is awaited, which is how a client that waits for replies
// behaves.
//
// The caller sets Comment and Ref to say what the recording is.
func FromRecording(name string, chunks []Chunk) *Transcript {
	t := &Transcript{Name: name}
	var client, server []byte // all bytes of each side
	var pendingServer []byte
	for _, c := range chunks {
		if c.FromClient {
			client = append(client, c.Data...)
			t.Steps = append(t.Steps, Step{Kind: Send, Data: append([]byte(nil), c.Data...)})
			continue
		}
		server = append(server, c.Data...)
		pendingServer = append(pendingServer, c.Data...)
		var replies [][]string
		replies, pendingServer = splitReplies(pendingServer)
		for _, r := range replies {
			t.Steps = append(t.Steps, Step{Kind: Expect, Reply: replyPatternOf(r)})
		}
	}
	t.Steps = splitSends(t.Steps)
	replies, _ := splitReplies(server)
	t.Deliveries = deliveries(client, replies)
	return t
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

// deliveries replays the client's commands against the server's replies,
// one reply per command in order (which pipelining keeps, RFC 2920 3.1),
// and returns the messages the server accepted.
func deliveries(client []byte, replies [][]string) []Delivery {
	var out []Delivery
	var cur *Delivery
	hello := ""
	next := func() string {
		if len(replies) == 0 {
			return ""
		}
		r := replies[0]
		replies = replies[1:]
		return r[len(r)-1]
	}
	if len(replies) > 0 {
		replies = replies[1:] // the greeting
	}
	lines := strings.SplitAfter(string(client), "\r\n")
	for i := 0; i < len(lines); i++ {
		line := strings.TrimSuffix(lines[i], "\r\n")
		if line == "" && i == len(lines)-1 {
			break
		}
		verb, arg, _ := strings.Cut(line, " ")
		verb = strings.ToUpper(verb)
		reply := next()
		ok := strings.HasPrefix(reply, "2")
		switch verb {
		case "HELO", "EHLO":
			if ok {
				hello, cur = arg, nil
			}
		case "RSET":
			cur = nil
		case "MAIL":
			if ok {
				cur = &Delivery{Hello: hello, Mail: pathArg(arg, "FROM:")}
			}
		case "RCPT":
			if ok && cur != nil {
				cur.Rcpts = append(cur.Rcpts, pathArg(arg, "TO:"))
			}
		case "DATA":
			if !strings.HasPrefix(reply, "354") {
				continue
			}
			var data []byte
			for i++; i < len(lines) && lines[i] != ".\r\n"; i++ {
				data = append(data, strings.TrimPrefix(lines[i], ".")...)
			}
			if strings.HasPrefix(next(), "250") && cur != nil {
				cur.Data = []DataPart{{Exact: data}}
				out = append(out, *cur)
			}
			cur = nil
		}
	}
	return out
}

// pathArg turns "FROM:<a@b> SIZE=1" into "<a@b> SIZE=1".
func pathArg(arg, prefix string) string {
	if len(arg) >= len(prefix) && strings.EqualFold(arg[:len(prefix)], prefix) {
		arg = arg[len(prefix):]
	}
	return strings.Join(strings.Fields(arg), " ")
}
