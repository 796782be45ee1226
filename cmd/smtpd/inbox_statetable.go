package main

import (
	"bytes"
	"strconv"
	"strings"
	"sync"

	"smtpd/smtpd"
)

// GET /state-table shows the library's state table (smtpd.WriteStateTable,
// the generator of smtpd/STATE-TABLE.md) as HTML, with an anchor on each
// row, so that a session's command links to the row that decided it. The
// document is Markdown of a few kinds of lines only (headings, paragraphs,
// lists, tables, code spans), which this turns into blocks for a template;
// html/template escapes every word.

// mdSpan is a run of text, or of code (a Markdown code span).
type mdSpan struct {
	Text string
	Code bool
}

// mdRow is a table row; ID is its anchor, raw its cells as written.
type mdRow struct {
	ID    string
	Cells [][]mdSpan
	raw   []string
}

// mdBlock is a heading (Level > 0), a paragraph, a list or a table.
type mdBlock struct {
	Level int
	ID    string
	Text  []mdSpan
	Items [][]mdSpan
	Head  [][]mdSpan
	Rows  []*mdRow
}

// stateDoc is the state table document, parsed once.
type stateDoc struct {
	Blocks []*mdBlock
	ids    map[string]bool
}

var (
	stateDocOnce sync.Once
	stateDocMemo *stateDoc
)

// theStateDoc returns the state table document.
func theStateDoc() *stateDoc {
	stateDocOnce.Do(func() {
		var b bytes.Buffer
		smtpd.WriteStateTable(&b) // a bytes.Buffer does not fail
		stateDocMemo = parseStateDoc(b.String())
	})
	return stateDocMemo
}

// parseStateDoc reads the document's lines into blocks.
func parseStateDoc(md string) *stateDoc {
	d := &stateDoc{ids: map[string]bool{}}
	var cur *mdBlock
	for _, line := range strings.Split(md, "\n") {
		switch {
		case strings.TrimSpace(line) == "":
			cur = nil
		case strings.HasPrefix(line, "#"):
			level := len(line) - len(strings.TrimLeft(line, "#"))
			text := strings.TrimSpace(line[level:])
			d.Blocks = append(d.Blocks, &mdBlock{Level: level, ID: slug(text), Text: spans(text)})
			cur = nil
		case strings.HasPrefix(line, "|"):
			if cur == nil || cur.Head == nil {
				cur = &mdBlock{Head: cells(line)}
				d.Blocks = append(d.Blocks, cur)
			} else if !strings.HasPrefix(line, "| ---") {
				d.addRow(cur, line)
			}
		case strings.HasPrefix(line, "- "):
			if cur == nil || cur.Items == nil {
				cur = &mdBlock{Items: [][]mdSpan{}}
				d.Blocks = append(d.Blocks, cur)
			}
			cur.Items = append(cur.Items, spans(line[2:]))
		default:
			if cur == nil || cur.Text == nil || cur.Level > 0 {
				cur = &mdBlock{Text: []mdSpan{}}
				d.Blocks = append(d.Blocks, cur)
			} else {
				line = " " + line
			}
			cur.Text = append(cur.Text, spans(line)...)
		}
	}
	return d
}

// addRow adds a table row, with its anchor: "cmd-VERB" in the table of
// commands by states, "rule-VERB-N" for the Nth rule of a verb,
// "guard-VERB-N" for its Nth guard.
func (d *stateDoc) addRow(t *mdBlock, line string) {
	raw := rawCells(line)
	r := &mdRow{raw: raw}
	for _, c := range raw {
		r.Cells = append(r.Cells, spans(c))
	}
	if len(raw) > 0 {
		kind := "cmd"
		switch head := rawCells(cellsText(t.Head)); {
		case len(head) > 2 && head[2] == "guard":
			kind = "guard"
		case len(head) > 2 && head[2] == "next":
			kind = "rule"
		}
		id := kind + "-" + slug(raw[0])
		for n := 1; kind != "cmd"; n++ {
			if !d.ids[id+"-"+strconv.Itoa(n)] {
				id += "-" + strconv.Itoa(n)
				break
			}
		}
		if !d.ids[id] {
			r.ID = id
			d.ids[id] = true
		}
	}
	t.Rows = append(t.Rows, r)
}

// anchor returns the anchor of the row that decided a command, from its
// trace event's Verb and Rule: the guard that refused it, the rule that
// allowed it, or else the verb's row; "" when the table has none.
func (d *stateDoc) anchor(verb, rule string) string {
	guard, refused := strings.CutPrefix(rule, "refused: ")
	for _, b := range d.Blocks {
		for _, r := range b.Rows {
			if r.ID == "" || len(r.raw) < 3 || r.raw[0] != verb {
				continue
			}
			switch {
			case refused && strings.HasPrefix(r.ID, "guard-") && r.raw[2] == guard:
				return r.ID
			case !refused && rule != "" && strings.HasPrefix(r.ID, "rule-") && strings.HasSuffix(r.raw[len(r.raw)-1], rule):
				return r.ID
			}
		}
	}
	if id := "cmd-" + slug(verb); d.ids[id] {
		return id
	}
	return ""
}

// rawCells splits a table line into its cells' text.
func rawCells(line string) []string {
	line = strings.TrimSpace(line)
	line = strings.TrimSuffix(strings.TrimPrefix(line, "|"), "|")
	var out []string
	for _, c := range strings.Split(line, "|") {
		out = append(out, strings.TrimSpace(c))
	}
	return out
}

func cells(line string) [][]mdSpan {
	var out [][]mdSpan
	for _, c := range rawCells(line) {
		out = append(out, spans(c))
	}
	return out
}

// cellsText joins cells back into a table line.
func cellsText(cs [][]mdSpan) string {
	var parts []string
	for _, c := range cs {
		var s strings.Builder
		for _, sp := range c {
			s.WriteString(sp.Text)
		}
		parts = append(parts, s.String())
	}
	return "| " + strings.Join(parts, " | ") + " |"
}

// spans splits text at its backquotes into text and code.
func spans(text string) []mdSpan {
	out := []mdSpan{}
	for i, s := range strings.Split(text, "`") {
		if s != "" {
			out = append(out, mdSpan{Text: s, Code: i%2 == 1})
		}
	}
	return out
}

// slug makes an anchor of text: letters and digits, other runs as "-".
func slug(text string) string {
	var b strings.Builder
	dash := false
	for _, r := range text {
		if 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' {
			if dash && b.Len() > 0 {
				b.WriteByte('-')
			}
			b.WriteRune(r)
			dash = false
		} else {
			dash = true
		}
	}
	return b.String()
}
