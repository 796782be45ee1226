package main

// The web inbox in-process: an smtpd.Server on loopback whose Handler is
// the program's deliverer and whose Trace is the inbox's, mail sent to it
// with net/smtp, and the inbox's handler behind net/http/httptest.

import (
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/smtp"
	"strings"
	"testing"

	"smtpd/smtpd"
)

// testInbox is an inbox with an SMTP server in front and a web server
// behind.
type testInbox struct {
	t    *testing.T
	in   *inbox
	ws   *webServer
	web  *httptest.Server
	smtp string // the SMTP server's address
}

// newTestInbox starts an inbox for cfg (nil: messages kept in memory).
func newTestInbox(t *testing.T, cfg *config) *testInbox {
	t.Helper()
	if cfg == nil {
		cfg = &config{httpKeep: defaultHTTPKeep}
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	in, err := newInbox(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	st, err := openStore(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := st.(*printStore); ok {
		st = discardStore{}
	}
	srv := &smtpd.Server{Hostname: "mx.test", Handler: &deliverer{store: st, inbox: in}, Trace: in.trace}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	ti := &testInbox{t: t, in: in, ws: newWebServer(in, log, nil, "127.0.0.1"), smtp: l.Addr().String()}
	ti.web = httptest.NewServer(ti.ws)
	t.Cleanup(ti.web.Close)
	t.Cleanup(in.events.close) // runs first: the event streams end, then the server closes
	return ti
}

// send sends msg (LF line ends, made CRLF) with net/smtp and returns the
// ID of the message the inbox got.
func (ti *testInbox) send(from string, to []string, msg string) string {
	ti.t.Helper()
	msg = strings.ReplaceAll(msg, "\n", "\r\n")
	if err := smtp.SendMail(ti.smtp, nil, from, to, []byte(msg)); err != nil {
		ti.t.Fatal(err)
	}
	// The deliverer indexes the message before the 250, so it is there.
	var l listJSON
	ti.getJSON("/api/v1/messages?limit=1", &l)
	if len(l.Messages) == 0 {
		ti.t.Fatal("the message sent is not in the inbox")
	}
	return l.Messages[0].ID
}

// put adds raw (with the envelope fields a store writes, CRLF line ends)
// as a message stored with ID id, as the deliverer would; it bypasses
// SMTP, for messages a client could not send.
func (ti *testInbox) put(id, raw string) {
	ti.t.Helper()
	ti.in.stored(&smtpd.Envelope{ID: id}, "", []byte("Return-Path: <a@example.org>\r\nDelivered-To: <b@example.net>\r\n"+raw))
}

// do sends a request to the web server and returns the response, its
// body read.
func (ti *testInbox) do(method, path string, body io.Reader, header ...string) (*http.Response, string) {
	ti.t.Helper()
	req, err := http.NewRequest(method, ti.web.URL+path, body)
	if err != nil {
		ti.t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		ti.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		ti.t.Fatal(err)
	}
	return resp, string(b)
}

// get GETs path and fails the test unless the status is want.
func (ti *testInbox) get(path string, want int) (*http.Response, string) {
	ti.t.Helper()
	resp, body := ti.do("GET", path, nil)
	if resp.StatusCode != want {
		ti.t.Fatalf("GET %s: %s, want %d\n%s", path, resp.Status, want, body)
	}
	return resp, body
}

// getJSON GETs path, wants 200, and decodes the JSON into v.
func (ti *testInbox) getJSON(path string, v any) {
	ti.t.Helper()
	_, body := ti.get(path, http.StatusOK)
	if err := json.Unmarshal([]byte(body), v); err != nil {
		ti.t.Fatalf("GET %s: %v\n%s", path, err, body)
	}
}

// rich is a message with the parts a mail from an application has: text
// in ISO-8859-1 and quoted-printable, HTML with an inline image and a
// script and a remote image, an attachment, RFC 2047 fields.
const rich = `From: =?UTF-8?Q?J=C3=B6rg?= <jorg@example.org>
To: Bob <bob@example.net>, carol@example.net
Cc: dave@example.net
Subject: =?UTF-8?B?SGVsbG8gd8O2cmxk?= rich
Date: Tue, 01 Dec 2026 10:00:00 +0100
Message-ID: <rich@example.org>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="outer"

--outer
Content-Type: multipart/related; boundary="rel"

--rel
Content-Type: multipart/alternative; boundary="alt"

--alt
Content-Type: text/plain; charset=iso-8859-1
Content-Transfer-Encoding: quoted-printable

Hello J=F6rg, plain text.
--alt
Content-Type: text/html; charset=utf-8

<html><body><h1 id="h">HTML part</h1><img src="cid:logo@x"><img src="REMOTE/pixel.png"><script>document.getElementById('h').textContent='SCRIPT RAN';new Image().src='REMOTE/script'</script></body></html>
--alt--
--rel
Content-Type: image/png
Content-ID: <logo@x>
Content-Transfer-Encoding: base64

iVBORw0KGgoAAAANSUhEUgAAACgAAAAUCAIAAABwJOjsAAAAJElEQVR4nGM4o6Q0IIhh1OJRi0ctHrV41OJRi0ctHrV45FgMAJxAUi7vNQYmAAAAAElFTkSuQmCC
--rel--
--outer
Content-Type: application/pdf; name="report.pdf"
Content-Disposition: attachment; filename*=UTF-8''r%C3%A9port.pdf
Content-Transfer-Encoding: base64

JVBERi0xLjQK
--outer--
`

// plain returns a short text message.
func plain(from, to, subject string) string {
	return "From: " + from + "\nTo: " + to + "\nSubject: " + subject + "\n\nHello.\n"
}
