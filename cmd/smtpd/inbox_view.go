package main

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

// maxViewSize is the largest message the inbox parses to show (its
// viewMax): a larger one is listed, and its raw source can be
// downloaded, but it is not decoded for a page.
const maxViewSize = 64 << 20

// messageView is a message decoded for the message page and the API.
type messageView struct {
	*entry
	Header      header // the fields, their values decoded (RFC 2047)
	ReplyTo     []address
	Bcc         []address
	Text        string
	HTML        string // cid: references made local URLs
	Inline      []attachmentJSON
	Attachments []attachmentJSON
	Errors      []string // what was wrong with the message, for a person
	mime        *mimeMessage
}

// attachmentJSON describes a part that is not the message's text, as
// mailpit's API does.
type attachmentJSON struct {
	PartID      string
	FileName    string
	ContentType string
	ContentID   string
	Size        int64
}

// view reads message e from the store and decodes it. Only the store
// failing is an error; what is wrong with the message is in Errors.
func (in *inbox) view(e *entry) (*messageView, error) {
	raw, err := in.raw(e)
	if err != nil {
		return nil, err
	}
	return in.decode(e, raw), nil
}

// decode decodes message e, raw as the store holds it.
func (in *inbox) decode(e *entry, raw []byte) *messageView {
	v := &messageView{entry: e}
	if len(raw) > in.viewMax {
		v.Errors = []string{fmt.Sprintf("the message is %d octets, more than the %d the inbox decodes; its raw source is complete", len(raw), in.viewMax)}
		v.Header = parseHeaderOnly(raw)
		return v
	}
	v.mime = parseMIME(raw)
	v.Errors = append(v.Errors, v.mime.Errors...)
	for _, f := range v.mime.Header {
		v.Header = append(v.Header, headerField{Name: f.Name, Value: decodeText(f.Value)})
	}
	v.ReplyTo = parseAddresses(v.mime.Header.get("Reply-To"))
	v.Bcc = parseAddresses(v.mime.Header.get("Bcc"))
	v.readParts()
	return v
}

// readParts decodes the leaves: the text parts become Text (all of them,
// in order) and HTML (the first; RFC 2046 5.1.4's alternatives carry the
// same text), the rest are listed as inline parts or attachments.
func (v *messageView) readParts() {
	cids := map[string]string{}
	var texts []string
	for _, p := range v.mime.Leaves {
		switch {
		case p.isAttachment():
			v.listPart(p, cids)
		case p.MediaType == "text/html" && v.HTML == "":
			s, err := p.text()
			v.note(p, err)
			v.HTML = s
		case p.MediaType == "text/html":
			v.listPart(p, cids) // a second HTML part: not shown, listed
		default:
			s, err := p.text()
			v.note(p, err)
			texts = append(texts, s)
		}
	}
	v.Text = strings.Join(texts, "\n")
	v.HTML = rewriteCID(v.HTML, v.ID, cids)
}

// listPart adds p to Inline or Attachments; cids maps the Content-IDs of
// the inline ones to their part IDs.
func (v *messageView) listPart(p *mimePart, cids map[string]string) {
	b, err := p.decode()
	v.note(p, err)
	a := attachmentJSON{PartID: p.ID, FileName: p.FileName, ContentType: p.MediaType, ContentID: p.ContentID, Size: int64(len(b))}
	if a.FileName == "" {
		a.FileName = "part-" + p.ID
	}
	if p.isInline() {
		cids[p.ContentID] = p.ID
		v.Inline = append(v.Inline, a)
		return
	}
	v.Attachments = append(v.Attachments, a)
}

func (v *messageView) note(p *mimePart, err error) {
	if err != nil {
		v.Errors = append(v.Errors, "part "+p.ID+": "+err.Error())
	}
}

// cidURL finds the cid: URLs of an HTML part (RFC 2392: "cid:" and the
// Content-ID without its angle brackets, %-encoded).
var cidURL = regexp.MustCompile(`(?i)\bcid:([^"'\s>)]+)`)

// rewriteCID points an HTML part's cid: URLs at the parts they name,
// served by GET /api/v1/message/{ID}/part/{PartID}; others are left as
// they are, and load nothing.
func rewriteCID(html, id string, cids map[string]string) string {
	if len(cids) == 0 {
		return html
	}
	return cidURL.ReplaceAllStringFunc(html, func(m string) string {
		cid, err := url.PathUnescape(m[len("cid:"):])
		if err != nil {
			return m
		}
		if part, ok := cids[cid]; ok {
			return partURL(id, part)
		}
		return m
	})
}

// partURL is where a part of a message is served.
func partURL(id, part string) string {
	return "/api/v1/message/" + url.PathEscape(id) + "/part/" + url.PathEscape(part)
}
