package main

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"mime"
	"mime/quotedprintable"
	"strconv"
	"strings"
)

// Limits of the MIME walker: a message may nest multiparts without end
// (RFC 2046 sets none) and hold any number of parts, and a viewer that
// followed them all could be made to spend without bound on one message.
// Past these the walker stops and says so.
const (
	maxMIMEDepth = 20   // multiparts within multiparts
	maxMIMEParts = 1000 // leaf parts of one message
)

// mimePart is one entity of a message (RFC 2045 2.4): a leaf, or a
// multipart whose Parts are its body parts (RFC 2046 5.1).
type mimePart struct {
	// ID is the part's section number as IMAP numbers them (RFC 3501
	// 6.4.5): "1", "2", "2.1"; the top-level entity of a message that is
	// not multipart is "1". A multipart itself has the ID of its place.
	ID          string
	Header      header
	MediaType   string            // lower case, "text/plain" when not given (RFC 2045 5.2)
	Params      map[string]string // Content-Type's parameters (RFC 2231 decoded)
	Disposition string            // "inline", "attachment" or "" (RFC 2183)
	FileName    string            // RFC 2183 2.3 filename, or Content-Type's name
	ContentID   string            // without its angle brackets (RFC 2392)
	Encoding    string            // Content-Transfer-Encoding, lower case (RFC 2045 6)
	Parts       []*mimePart

	raw []byte // the body as it stands in the message, still encoded
}

// mimeMessage is a message's MIME structure, walked once; decoding a
// part's body waits until it is asked for (mimePart.decode).
type mimeMessage struct {
	Header header
	Root   *mimePart
	Leaves []*mimePart // every leaf part, in order
	Errors []string    // what was wrong, for a person to read
}

// parseMIME walks the MIME structure of msg. It never fails: what it
// cannot read is kept as it is, and the reason is in Errors.
func parseMIME(msg []byte) *mimeMessage {
	m := &mimeMessage{}
	head, body := splitHeader(msg)
	h, err := parseHeader(head)
	m.Header = h
	m.note("", err)
	if h.get("MIME-Version") == "" && h.get("Content-Type") == "" {
		// RFC 2045 4: without MIME-Version the body is plain text
		// (RFC 5322); a Content-Type alone is read all the same, as
		// mail readers do.
		m.Root = &mimePart{ID: "1", Header: h, MediaType: "text/plain", Params: map[string]string{}, raw: body}
		m.Leaves = []*mimePart{m.Root}
		return m
	}
	m.Root = m.walk(h, body, "", 0, "text/plain")
	return m
}

// note records err, prefixed with the part it is about.
func (m *mimeMessage) note(id string, err error) {
	if err == nil {
		return
	}
	if id != "" {
		m.Errors = append(m.Errors, "part "+id+": "+err.Error())
	} else {
		m.Errors = append(m.Errors, err.Error())
	}
}

// walk reads one entity with header h and body. prefix is the section
// number of the enclosing multipart ("" at the top), depth how many
// multiparts enclose it, and defaultType the media type an entity without
// Content-Type has there (message/rfc822 in a multipart/digest, RFC 2046
// 5.1.5).
func (m *mimeMessage) walk(h header, body []byte, id string, depth int, defaultType string) *mimePart {
	p := &mimePart{ID: id, Header: h, raw: body}
	m.readContentType(p, defaultType)
	m.readDisposition(p)
	if strings.HasPrefix(p.MediaType, "multipart/") && p.Params["boundary"] == "" {
		m.note(p.ID, fmt.Errorf("%s without a boundary parameter (RFC 2046 5.1.1); shown as text", p.MediaType))
		p.MediaType, p.Params = "text/plain", map[string]string{}
	}
	if !strings.HasPrefix(p.MediaType, "multipart/") {
		if p.ID == "" {
			p.ID = "1" // RFC 3501 6.4.5: a non-multipart message's body is part 1
		}
		if len(m.Leaves) >= maxMIMEParts {
			m.note(p.ID, fmt.Errorf("more than %d parts; the rest is not shown", maxMIMEParts))
			return p
		}
		m.Leaves = append(m.Leaves, p)
		return p
	}
	boundary := p.Params["boundary"]
	if depth >= maxMIMEDepth {
		m.note(p.ID, fmt.Errorf("multiparts nested deeper than %d; the parts inside are not shown", maxMIMEDepth))
		return p
	}
	parts, closed := splitMultipart(body, boundary)
	if !closed {
		m.note(p.ID, fmt.Errorf("%s: no closing boundary \"--%s--\" (RFC 2046 5.1.1): the message may be cut off", p.MediaType, truncate(boundary, 70)))
	}
	childType := "text/plain"
	if p.MediaType == "multipart/digest" {
		childType = "message/rfc822"
	}
	for i, raw := range parts {
		if len(m.Leaves) >= maxMIMEParts {
			m.note(p.ID, fmt.Errorf("more than %d parts; the rest is not shown", maxMIMEParts))
			break
		}
		childID := strconv.Itoa(i + 1)
		if id != "" {
			childID = id + "." + childID
		}
		ch, cb := splitHeader(raw)
		chh, err := parseHeader(ch)
		m.note(childID, err)
		p.Parts = append(p.Parts, m.walk(chh, cb, childID, depth+1, childType))
	}
	return p
}

// readContentType sets p's media type and parameters (RFC 2045 5). A
// field that does not parse makes the entity text/plain, as RFC 2045 5.2
// says a reader should.
func (m *mimeMessage) readContentType(p *mimePart, defaultType string) {
	p.MediaType, p.Params = defaultType, map[string]string{}
	p.Encoding = strings.ToLower(strings.TrimSpace(p.Header.get("Content-Transfer-Encoding")))
	ct := p.Header.get("Content-Type")
	if ct == "" {
		return
	}
	mt, params, err := mime.ParseMediaType(ct)
	switch {
	case err != nil && mt == "":
		m.note(p.ID, fmt.Errorf("Content-Type %q does not parse (%v); shown as text/plain (RFC 2045 5.2)", truncate(ct, 60), err))
		p.MediaType = "text/plain"
	case err != nil:
		// The type parsed, a parameter did not: keep the type.
		m.note(p.ID, fmt.Errorf("Content-Type %q: %v", truncate(ct, 60), err))
		p.MediaType = mt
	default:
		p.MediaType, p.Params = mt, params
	}
}

// readDisposition reads Content-Disposition (RFC 2183), the file name and
// Content-ID (RFC 2392).
func (m *mimeMessage) readDisposition(p *mimePart) {
	if cd := p.Header.get("Content-Disposition"); cd != "" {
		d, params, err := mime.ParseMediaType(cd)
		if err != nil && d == "" {
			m.note(p.ID, fmt.Errorf("Content-Disposition %q does not parse: %v", truncate(cd, 60), err))
		}
		p.Disposition = d
		p.FileName = params["filename"]
	}
	if p.FileName == "" {
		p.FileName = p.Params["name"] // before RFC 2183, the name parameter
	}
	p.FileName = safeFileName(decodeText(p.FileName))
	p.ContentID = strings.Trim(strings.TrimSpace(p.Header.get("Content-ID")), "<>")
}

// safeFileName keeps a file name's last element only, without control
// characters: a name sent as "../../.bashrc" must not reach a path.
func safeFileName(name string) string {
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	name = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, name)
	if name == "." || name == ".." {
		return ""
	}
	return strings.TrimSpace(name)
}

// splitMultipart splits a multipart body at its boundary delimiter lines
// (RFC 2046 5.1.1): "--" boundary at the start of a line, "--" boundary
// "--" for the last one, each optionally followed by white space. The line
// end before a delimiter belongs to the delimiter, not to the part; the
// preamble and the epilogue are dropped. closed reports whether the close
// delimiter was found; without it the last part runs to the end.
func splitMultipart(body []byte, boundary string) (parts [][]byte, closed bool) {
	delim := []byte("--" + boundary)
	start := -1 // where the current part begins; -1 in the preamble
	for i := 0; i < len(body); {
		j := bytes.Index(body[i:], delim)
		if j < 0 {
			break
		}
		j += i
		i = j + len(delim)
		if j > 0 && body[j-1] != '\n' {
			continue // not at the start of a line
		}
		rest, next := restOfLine(body, i)
		final := bytes.HasPrefix(rest, []byte("--"))
		if final {
			rest = rest[2:]
		}
		if len(bytes.TrimRight(rest, " \t\r")) > 0 {
			continue // a longer word that begins with the boundary
		}
		if start >= 0 {
			parts = append(parts, body[start:max(start, lineEndBefore(body, j))])
		}
		if final {
			return parts, true
		}
		start, i = next, next
	}
	if start >= 0 {
		parts = append(parts, body[start:])
	}
	return parts, false
}

// restOfLine returns the octets from i to the end of their line, without
// the LF, and where the next line starts.
func restOfLine(b []byte, i int) (rest []byte, next int) {
	j := bytes.IndexByte(b[i:], '\n')
	if j < 0 {
		return b[i:], len(b)
	}
	return b[i : i+j], i + j + 1
}

// lineEndBefore returns j less the line end (LF or CRLF) just before it.
func lineEndBefore(b []byte, j int) int {
	if j > 0 && b[j-1] == '\n' {
		j--
		if j > 0 && b[j-1] == '\r' {
			j--
		}
	}
	return j
}

// decode returns the part's body without its Content-Transfer-Encoding
// (RFC 2045 6). An encoding it does not know is an error, and the body is
// then returned as it is (RFC 2045 6.4: treat it as application/octet-stream).
func (p *mimePart) decode() ([]byte, error) {
	switch p.Encoding {
	case "", "7bit", "8bit", "binary":
		return p.raw, nil
	case "base64":
		return decodeBase64(p.raw)
	case "quoted-printable":
		b, err := io.ReadAll(quotedprintable.NewReader(bytes.NewReader(p.raw)))
		if err != nil {
			return b, fmt.Errorf("quoted-printable (RFC 2045 6.7): %v", err)
		}
		return b, nil
	}
	return p.raw, fmt.Errorf("Content-Transfer-Encoding %q unknown (RFC 2045 6.4); shown undecoded", truncate(p.Encoding, 40))
}

// decodeBase64 decodes RFC 2045 6.8's base64, whose lines are broken: the
// line ends and any other white space are dropped first. Padding that is
// missing is tolerated.
func decodeBase64(raw []byte) ([]byte, error) {
	clean := make([]byte, 0, len(raw))
	for _, c := range raw {
		if c != '\r' && c != '\n' && c != ' ' && c != '\t' {
			clean = append(clean, c)
		}
	}
	enc := base64.StdEncoding
	if len(clean)%4 != 0 {
		enc = base64.RawStdEncoding
		clean = bytes.TrimRight(clean, "=")
	}
	out := make([]byte, enc.DecodedLen(len(clean)))
	n, err := enc.Decode(out, clean)
	if err != nil {
		return out[:n], fmt.Errorf("base64 (RFC 2045 6.8): %v", err)
	}
	return out[:n], nil
}

// text returns a text part's body as UTF-8: decoded, then converted from
// its charset (RFC 2046 4.1.2).
func (p *mimePart) text() (string, error) {
	b, err := p.decode()
	s, ok := decodeCharset(p.Params["charset"], b)
	if err == nil && !ok {
		err = fmt.Errorf("charset %q not supported; shown as UTF-8", truncate(p.Params["charset"], 40))
	}
	return s, err
}

// isAttachment reports whether p is shown as an attachment rather than as
// the message's text: a disposition of attachment (RFC 2183 2.2), a file
// name, or a type other than text.
func (p *mimePart) isAttachment() bool {
	if p.Disposition == "attachment" || p.FileName != "" {
		return true
	}
	return p.MediaType != "text/plain" && p.MediaType != "text/html"
}

// attachmentCount counts the parts isAttachment, not those an HTML part
// shows inline by their Content-ID: the list's attachment mark.
func (m *mimeMessage) attachmentCount() int {
	n := 0
	for _, p := range m.Leaves {
		if p.isAttachment() && !p.isInline() {
			n++
		}
	}
	return n
}

// isInline reports whether p is an inline part with a Content-ID, such as
// an image of an HTML part (RFC 2387 multipart/related, RFC 2392).
func (p *mimePart) isInline() bool {
	return p.ContentID != "" && p.Disposition != "attachment" && p.isAttachment()
}

// part returns the leaf with section number id, or nil.
func (m *mimeMessage) part(id string) *mimePart {
	for _, p := range m.Leaves {
		if p.ID == id {
			return p
		}
	}
	return nil
}
