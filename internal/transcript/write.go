package transcript

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Write renders t in the transcript format, so that Parse(Write(t)) gives t
// back. Identical consecutive steps are folded with a repeat count; client
// bytes are written as C: lines where they are text lines and as C! with
// Go-quoted strings where they are not (bare CR or LF, NUL, a line without
// its CRLF, trailing spaces an editor would strip).
func Write(w io.Writer, t *Transcript) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "# %s\n", oneLine(t.Comment))
	fmt.Fprintf(bw, "ref: %s\n", oneLine(t.Ref))
	for _, f := range t.Header {
		fmt.Fprintf(bw, "%s: %s\n", f.Key, oneLine(f.Value))
	}
	bw.WriteString("\n")
	for i := 0; i < len(t.Steps); {
		n := 1
		for i+n < len(t.Steps) && sameStep(t.Steps[i], t.Steps[i+n]) {
			n++
		}
		lines := stepLines(t.Steps[i])
		if n > 1 && len(lines) == 1 {
			fmt.Fprintf(bw, "%d* %s\n", n, lines[0])
		} else {
			for j := 0; j < n; j++ {
				for _, l := range lines {
					bw.WriteString(l + "\n")
				}
			}
		}
		i += n
	}
	for _, d := range t.Deliveries {
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
		fmt.Fprintf(bw, "mail: %s\n", d.Mail)
		for _, r := range d.Rcpts {
			fmt.Fprintf(bw, "rcpt: %s\n", r)
		}
		for _, p := range d.Data {
			if p.Line != nil {
				fmt.Fprintf(bw, "D~ %s\n", unwrap(p.Line.String(), "^(?:", ")\r\n$"))
				continue
			}
			for _, l := range textLines(p.Exact) {
				bw.WriteString("D" + l[1:] + "\n")
			}
		}
	}
	return bw.Flush()
}

func oneLine(s string) string { return strings.NewReplacer("\r", " ", "\n", " ").Replace(s) }

func unwrap(s, prefix, suffix string) string {
	return strings.TrimSuffix(strings.TrimPrefix(s, prefix), suffix)
}

func sameStep(a, b Step) bool {
	if a.Kind != b.Kind || a.Duration != b.Duration || !bytes.Equal(a.Data, b.Data) {
		return false
	}
	la, lb := stepLines(a), stepLines(b)
	return strings.Join(la, "\n") == strings.Join(lb, "\n")
}

// stepLines renders one step.
func stepLines(s Step) []string {
	switch s.Kind {
	case Send:
		return textLines(s.Data)
	case Expect:
		var lines []string
		for _, lp := range s.Reply.Lines {
			l := "S: " + strings.Join(lp.Codes, "|")
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
// CRLF and "C! \"...\"" for the rest.
func textLines(b []byte) []string {
	var lines []string
	var raw []byte
	flushRaw := func() {
		if len(raw) > 0 {
			lines = append(lines, "C! "+strconv.Quote(string(raw)))
			raw = nil
		}
	}
	for len(b) > 0 {
		i := bytes.Index(b, []byte("\r\n"))
		if i >= 0 && isTextLine(b[:i]) {
			flushRaw()
			if i == 0 {
				lines = append(lines, "C:")
			} else {
				lines = append(lines, "C: "+string(b[:i]))
			}
			b = b[i+2:]
			continue
		}
		// Up to the end of this line, or all that is left.
		n := len(b)
		if i >= 0 {
			n = i + 2
		}
		raw = append(raw, b[:n]...)
		b = b[n:]
	}
	flushRaw()
	return lines
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
