package main

import (
	"bytes"
	"fmt"
	"io"
	"mime"
	"net/mail"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"
)

// The web inbox (-http) reads messages as a mail reader does: the header
// fields of RFC 5322, with RFC 2047's encoded-words decoded, and the MIME
// structure of RFC 2045 and 2046 (inbox_mime.go). What it reads comes from
// anyone who can send mail, so every reader here is lenient (it shows
// what it can) and bounded (it never follows more than the message holds),
// and says what was wrong instead of failing.

// headerField is one field of a header section, unfolded (RFC 5322
// 2.2.3): its name as written, its value without the leading white space.
type headerField struct {
	Name, Value string
}

// header is a header section, its fields in order.
type header []headerField

// get returns the value of the first field called name (RFC 5322 field
// names are case-insensitive), "" when there is none.
func (h header) get(name string) string {
	for _, f := range h {
		if strings.EqualFold(f.Name, name) {
			return f.Value
		}
	}
	return ""
}

// values returns the values of every field called name, in order.
func (h header) values(name string) []string {
	var v []string
	for _, f := range h {
		if strings.EqualFold(f.Name, name) {
			v = append(v, f.Value)
		}
	}
	return v
}

// splitHeader splits an entity at the empty line that ends its header
// section (RFC 5322 2.1; RFC 2045 for MIME parts). Lines may end in CRLF,
// as received, or in LF, as a Maildir or an mbox holds them. Without an
// empty line, everything is header.
func splitHeader(msg []byte) (head, body []byte) {
	for i := 0; i < len(msg); {
		j := bytes.IndexByte(msg[i:], '\n')
		if j < 0 {
			break
		}
		if j == 0 || j == 1 && msg[i] == '\r' {
			return msg[:i], msg[i+j+1:]
		}
		i += j + 1
	}
	return msg, nil
}

// parseHeader reads a header section. A line that continues a field
// (it starts with white space) is joined to it, which unfolds it (RFC 5322
// 2.2.3). A line that is neither a field nor a continuation is skipped and
// reported in err, so that one bad line does not hide the others; white
// space before the colon is allowed, as RFC 5322 4.5's obsolete syntax did.
func parseHeader(head []byte) (header, error) {
	var h header
	var err error
	for n := 1; len(head) > 0; n++ {
		var line []byte
		line, head, _ = bytes.Cut(head, []byte("\n"))
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) > 0 && (line[0] == ' ' || line[0] == '\t') {
			if len(h) > 0 {
				h[len(h)-1].Value += string(line)
				continue
			}
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		name = bytes.TrimRight(name, " \t")
		if !ok || !isFieldName(name) {
			if err == nil {
				err = fmt.Errorf("header line %d is not a field (RFC 5322 2.2): %q", n, truncate(string(line), 60))
			}
			continue
		}
		h = append(h, headerField{Name: string(name), Value: strings.TrimLeft(string(value), " \t")})
	}
	return h, err
}

// isFieldName reports whether b is a field name: printable US-ASCII but
// the colon (RFC 5322 2.2).
func isFieldName(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c < 33 || c > 126 || c == ':' {
			return false
		}
	}
	return true
}

// wordDecoder decodes RFC 2047 encoded-words in the charsets that
// decodeCharset knows.
var wordDecoder = &mime.WordDecoder{CharsetReader: func(charset string, r io.Reader) (io.Reader, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	s, ok := decodeCharset(charset, b)
	if !ok {
		return nil, fmt.Errorf("charset %q not supported", charset)
	}
	return strings.NewReader(s), nil
}}

// decodeText decodes a field of unstructured text, such as Subject
// (RFC 2047 encoded-words). When one encoded-word cannot be decoded (an
// unknown charset, bad base64), the others still are, one by one, and it
// is left as it is. RFC 6532 allows UTF-8 in fields; other 8-bit octets
// become U+FFFD.
func decodeText(s string) string {
	if d, err := wordDecoder.DecodeHeader(s); err == nil {
		s = d
	} else {
		s = encodedWord.ReplaceAllStringFunc(s, func(w string) string {
			if d, err := wordDecoder.Decode(w); err == nil {
				return d
			}
			return w
		})
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// encodedWord matches an RFC 2047 2 encoded-word: =?charset?encoding?text?=.
var encodedWord = regexp.MustCompile(`=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=`)

// address is a mailbox of an address field, as mailpit's API writes it.
type address struct {
	Name    string
	Address string
}

// String is the address as a person reads it: the name as it is, not
// encoded or quoted as in a header field.
func (a address) String() string {
	if a.Name == "" {
		return a.Address
	}
	return a.Name + " <" + a.Address + ">"
}

var addressParser = &mail.AddressParser{WordDecoder: wordDecoder}

// parseAddresses reads an address list (RFC 5322 3.4). A list that does
// not parse is returned whole, decoded, as one address: the inbox must
// still show who it claims to be from.
func parseAddresses(s string) []address {
	if strings.TrimSpace(s) == "" {
		return nil
	}
	list, err := addressParser.ParseList(s)
	if err != nil {
		return []address{{Address: decodeText(strings.TrimSpace(s))}}
	}
	out := make([]address, len(list))
	for i, a := range list {
		out[i] = address{Name: strings.ToValidUTF8(a.Name, "\uFFFD"), Address: strings.ToValidUTF8(a.Address, "\uFFFD")}
	}
	return out
}

// parseDate reads a Date field (RFC 5322 3.3); zero when it does not parse.
func parseDate(s string) time.Time {
	t, err := mail.ParseDate(s)
	if err != nil {
		return time.Time{}
	}
	return t
}

// decodeCharset converts b from charset to UTF-8 (RFC 2046 4.1.2: the
// charset parameter names the text's character set; none is US-ASCII).
// The standard library converts nothing, so this knows the charsets mail
// mostly comes in: UTF-8, US-ASCII, ISO-8859-1 and Windows-1252. ok is
// false for any other; the text is then returned as UTF-8 would read it.
// Octets that are not valid in the charset become U+FFFD.
func decodeCharset(charset string, b []byte) (s string, ok bool) {
	switch strings.ToLower(strings.TrimSpace(charset)) {
	case "", "utf-8", "utf8", "us-ascii", "ascii":
		return strings.ToValidUTF8(string(b), "\uFFFD"), true
	case "iso-8859-1", "iso8859-1", "latin1", "l1", "iso_8859-1", "cp819":
		return singleByte(b, nil), true
	case "windows-1252", "cp1252", "x-cp1252":
		return singleByte(b, &cp1252), true
	}
	return strings.ToValidUTF8(string(b), "\uFFFD"), false
}

// singleByte decodes a charset of one octet per character that is
// ISO-8859-1 (whose octets are the first 256 code points) but for the
// octets 0x80 to 0x9F, which high maps when not nil.
func singleByte(b []byte, high *[32]rune) string {
	var sb strings.Builder
	sb.Grow(len(b))
	for _, c := range b {
		r := rune(c)
		if high != nil && c >= 0x80 && c < 0xA0 {
			r = high[c-0x80]
		}
		sb.WriteRune(r)
	}
	return sb.String()
}

// cp1252 is Windows-1252's 0x80 to 0x9F; the five octets it leaves
// undefined map to the C1 controls, as the WHATWG Encoding Standard says.
var cp1252 = [32]rune{
	0x20AC, 0x81, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021,
	0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0x8D, 0x017D, 0x8F,
	0x90, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014,
	0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x9D, 0x017E, 0x0178,
}

// truncate shortens s to at most n runes, marking the cut.
func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n]) + "…"
}
