package main

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// crlf makes a message of LF-ended lines CRLF-ended, as received.
func crlf(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }

// nested returns a message of depth multiparts, one inside the other.
func nested(depth int) string {
	var b strings.Builder
	b.WriteString("Subject: nested\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=b0\n\n")
	for i := 0; i < depth; i++ {
		fmt.Fprintf(&b, "--b%d\nContent-Type: multipart/mixed; boundary=b%d\n\n", i, i+1)
	}
	fmt.Fprintf(&b, "--b%d\nContent-Type: text/plain\n\ndeep inside\n", depth)
	for i := depth; i >= 0; i-- {
		fmt.Fprintf(&b, "--b%d--\n", i)
	}
	return b.String()
}

// manyParts returns a multipart message of n parts.
func manyParts(n int) string {
	var b strings.Builder
	b.WriteString("Subject: many\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=x\n\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "--x\nContent-Type: application/octet-stream\n\n%d\n", i)
	}
	b.WriteString("--x--\n")
	return b.String()
}

const mimeHead = "From: a@example.org\nSubject: %s\nMIME-Version: 1.0\n"

// Malformed, deeply nested, wrongly encoded and huge messages: the
// message's page and API say clearly what is wrong, show what can be
// read, and the inbox goes on working.
func TestInboxBadMIME(t *testing.T) {
	ti := newTestInbox(t, nil)
	ti.in.viewMax = 1 << 20
	huge := base64.StdEncoding.EncodeToString(make([]byte, 900<<10))
	for _, tc := range []struct {
		name, msg string
		errs      []string // each must be in an error
		text      string   // must be in Text
	}{
		{"unclosed", fmt.Sprintf(mimeHead, "unclosed") + "Content-Type: multipart/mixed; boundary=zz\n\n--zz\nContent-Type: text/plain\n\ncut off here\n",
			[]string{"no closing boundary", "--zz--", "RFC 2046 5.1.1"}, "cut off here"},
		{"no boundary", fmt.Sprintf(mimeHead, "no boundary") + "Content-Type: multipart/mixed\n\nbody\n",
			[]string{"without a boundary parameter"}, "body"},
		{"nested", nested(50), []string{"nested deeper than 20"}, ""},
		{"many parts", manyParts(1100), []string{"more than 1000 parts"}, ""},
		{"bad base64", fmt.Sprintf(mimeHead, "bad base64") + "Content-Type: text/plain\nContent-Transfer-Encoding: base64\n\naGVsbG8=!!!!\n",
			[]string{"part 1: base64 (RFC 2045 6.8)"}, "hello"},
		{"bad quoted-printable", fmt.Sprintf(mimeHead, "bad qp") + "Content-Type: text/plain\nContent-Transfer-Encoding: quoted-printable\n\nok \x01 then\n",
			[]string{"quoted-printable (RFC 2045 6.7)"}, "ok "},
		{"unknown encoding", fmt.Sprintf(mimeHead, "x-uue") + "Content-Type: text/plain\nContent-Transfer-Encoding: x-uuencode\n\nbegin 644\n",
			[]string{`Content-Transfer-Encoding "x-uuencode" unknown`}, "begin 644"},
		{"unknown charset", fmt.Sprintf(mimeHead, "koi8") + "Content-Type: text/plain; charset=koi8-r\n\n\xf0\xd2\xc9\xd7\xc5\xd4\n",
			[]string{`charset "koi8-r" not supported`}, "\uFFFD"},
		{"bad content type", fmt.Sprintf(mimeHead, "bad ct") + "Content-Type: /;;\n\nstill text\n",
			[]string{"Content-Type", "does not parse"}, "still text"},
		{"bad header line", "Subject: bad header\nthis line is no field\nFrom: a@example.org\n\nbody\n",
			[]string{"header line", "is not a field"}, "body"},
		{"bad encoded-word and 8-bit header", "Subject: =?utf-8?B?!!!?= caf\xe9\n\nbody\n", nil, "body"},
		{"empty", "", nil, ""},
		{"header only", "Subject: header only\n", nil, ""},
		{"huge", fmt.Sprintf(mimeHead, "huge") + "Content-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\n" + huge + "\n",
			[]string{"more than the 1048576 the inbox decodes"}, ""},
	} {
		id := "m" + strings.ReplaceAll(tc.name, " ", "")
		id = strings.ReplaceAll(id, "-", "")
		ti.put(id, crlf(tc.msg))
		var m messageJSON
		ti.getJSON("/api/v1/message/"+id, &m)
		for _, want := range tc.errs {
			if !strings.Contains(strings.Join(m.Errors, "\n"), want) {
				t.Errorf("%s: errors %q lack %q", tc.name, m.Errors, want)
			}
		}
		if len(tc.errs) == 0 && len(m.Errors) > 0 {
			t.Errorf("%s: errors %q", tc.name, m.Errors)
		}
		if !strings.Contains(m.Text, tc.text) {
			t.Errorf("%s: Text %q lacks %q", tc.name, m.Text, tc.text)
		}
		_, page := ti.get("/message/"+id, http.StatusOK)
		if len(tc.errs) > 0 && !strings.Contains(page, `<div class="errors" role="alert">`) {
			t.Errorf("%s: the page does not show the errors", tc.name)
		}
		ti.get("/message/"+id+"/session", http.StatusOK)
		ti.get("/api/v1/message/"+id+"/raw", http.StatusOK)
	}
	var l listJSON
	ti.getJSON("/api/v1/messages", &l)
	_, list := ti.get("/", http.StatusOK)
	if l.Total != 14 || !strings.Contains(list, "malformed") {
		t.Errorf("the list after the bad messages: %d messages, marked: %v", l.Total, strings.Contains(list, "malformed"))
	}
	// The inbox still takes and shows mail.
	id := ti.send("a@example.org", []string{"b@example.net"}, plain("a@example.org", "b@example.net", "after"))
	ti.get("/message/"+id, http.StatusOK)
}

// Parts of a huge message are decoded whole; a part that cannot be
// decoded is an error of its download.
func TestInboxHugeAttachment(t *testing.T) {
	ti := newTestInbox(t, nil)
	data := make([]byte, 8<<20)
	for i := range data {
		data[i] = byte(i * 7)
	}
	b64 := base64.StdEncoding.EncodeToString(data)
	var lines []string
	for len(b64) > 76 { // RFC 2045 6.8: lines of at most 76 characters
		lines, b64 = append(lines, b64[:76]), b64[76:]
	}
	lines = append(lines, b64)
	msg := fmt.Sprintf(mimeHead, "big") + "Content-Type: multipart/mixed; boundary=q\n\n--q\nContent-Type: text/plain\n\nsee attached\n" +
		"--q\nContent-Type: application/octet-stream\nContent-Disposition: attachment; filename=big.bin\nContent-Transfer-Encoding: base64\n\n" +
		strings.Join(lines, "\n") + "\n--q\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\n%%%%\n--q--\n"
	ti.put("big", crlf(msg))
	var m messageJSON
	ti.getJSON("/api/v1/message/big", &m)
	if len(m.Attachments) != 2 || m.Attachments[0].Size != int64(len(data)) || m.Text != "see attached" {
		t.Fatalf("attachments %+v, text %q", m.Attachments, m.Text)
	}
	_, got := ti.get("/api/v1/message/big/part/2", http.StatusOK)
	if got != string(data) {
		t.Errorf("the 8 MiB attachment does not come back whole (%d octets)", len(got))
	}
	ti.get("/api/v1/message/big/part/3", http.StatusUnprocessableEntity)
}

// The walker's pieces: multipart splitting (LF or CRLF, transport
// padding, a boundary that is a prefix of a line), header unfolding,
// charsets, RFC 2047 and RFC 2231 file names.
func TestMIMEPieces(t *testing.T) {
	parts, closed := splitMultipart([]byte("preamble\n--b \nA\n--bb\n--b\r\nB\r\n\r\n--b--  \r\nepilogue"), "b")
	if !closed || len(parts) != 2 || string(parts[0]) != "A\n--bb" || string(parts[1]) != "B\r\n" {
		t.Errorf("splitMultipart: %q closed %v", parts, closed)
	}
	h, err := parseHeader([]byte("Subject: a\r\n  folded\r\nX-Empty:\r\nTo : b@example.org\r\n"))
	if err != nil || h.get("subject") != "a  folded" || h.get("To") != "b@example.org" || len(h) != 3 {
		t.Errorf("parseHeader: %q %v", h, err)
	}
	if s, ok := decodeCharset("windows-1252", []byte("\x93caf\xe9\x94 \x80")); !ok || s != "“café” €" {
		t.Errorf("windows-1252: %q", s)
	}
	if s := decodeText("=?iso-8859-1?q?caf=E9?= =?windows-1252?Q?=80?= =?koi8-r?B?8A==?="); s != "café € =?koi8-r?B?8A==?=" {
		t.Errorf("decodeText: %q", s)
	}
	m := parseMIME([]byte(crlf("MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=x\n\n--x\n" +
		"Content-Type: text/plain; name=\"=?utf-8?q?na=C3=AFve?=.txt\"\n\nA\n--x\n" +
		"Content-Type: application/octet-stream\nContent-Disposition: attachment; filename*=UTF-8''..%2F..%2Fetc%2Fpasswd\n\nB\n--x--\n")))
	if len(m.Leaves) != 2 || m.Leaves[0].FileName != "naïve.txt" || m.Leaves[1].FileName != "passwd" || m.attachmentCount() != 2 {
		t.Errorf("file names %q %q, %d attachments", m.Leaves[0].FileName, m.Leaves[1].FileName, m.attachmentCount())
	}
	digest := parseMIME([]byte(crlf("MIME-Version: 1.0\nContent-Type: multipart/digest; boundary=d\n\n--d\n\nSubject: inner\n\nhi\n--d--\n")))
	if len(digest.Leaves) != 1 || digest.Leaves[0].MediaType != "message/rfc822" {
		t.Errorf("multipart/digest's default type (RFC 2046 5.1.5): %q", digest.Leaves[0].MediaType)
	}
}

// FuzzParseMIME: whatever the message, the walker and the view return,
// within their limits. The seeds run with the normal tests.
func FuzzParseMIME(f *testing.F) {
	for _, seed := range []string{rich, nested(25), manyParts(3), "", "Subject: x\n\nbody",
		fmt.Sprintf(mimeHead, "q") + "Content-Type: text/plain; charset=windows-1252\nContent-Transfer-Encoding: quoted-printable\n\n=93x=94=\n",
		fmt.Sprintf(mimeHead, "b") + "Content-Type: multipart/alternative; boundary=\"a b\"\n\n--a b\n\nx\n--a b\nContent-Type: text/html\n\n<img src=cid:y>\n--a b--",
		"MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\n\n--\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		m := parseMIME(msg)
		if len(m.Leaves) > maxMIMEParts {
			t.Fatalf("%d parts, more than %d", len(m.Leaves), maxMIMEParts)
		}
		for _, p := range m.Leaves {
			if n := strings.Count(p.ID, ".") + 1; n > maxMIMEDepth+1 {
				t.Fatalf("part %s is %d deep", p.ID, n)
			}
			if m.part(p.ID) == nil {
				t.Fatalf("part %s not found by its ID", p.ID)
			}
		}
		v := &messageView{entry: &entry{ID: "x"}, mime: m}
		v.readParts()
		_ = indexMessage(msg, v.Created)
	})
}
