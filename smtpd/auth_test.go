package smtpd

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

// AUTH (RFC 4954) with PLAIN (RFC 4616), LOGIN and a mechanism of the
// user's.

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// authServer accepts user "jane" with password "secret".
func authServer(rec *recorder) *Server {
	return &Server{
		Handler: rec,
		Authenticate: func(ctx context.Context, env *Envelope, identity, username, password string) error {
			switch {
			case username == "broken":
				return errors.New("directory unreachable")
			case username != "jane" || password != "secret":
				return ErrAuthFailed
			case identity != "" && identity != "jane":
				return &Reply{Code: 535, Enhanced: "5.7.8", Text: "Not authorized to act as that identity"}
			}
			return nil
		},
	}
}

// TestAuthNeedsTLS: AUTH is not offered in the clear and answered 538
// (RFC 4954 4), unless AllowInsecureAuth; it is offered after STARTTLS.
func TestAuthNeedsTLS(t *testing.T) {
	serverTLS, clientTLS := testTLS(t)
	srv := authServer(&recorder{})
	srv.TLSConfig = serverTLS
	c := dial(t, startServer(t, srv))
	c.expect("220")
	if lines := c.do("EHLO client.example", "250"); hasLine(lines, "AUTH LOGIN PLAIN") {
		t.Fatalf("AUTH offered in the clear: %q", lines)
	}
	c.do("AUTH PLAIN "+b64("\x00jane\x00secret"), "538 5.7.11")
	c.startTLS(clientTLS)
	if lines := c.do("EHLO client.example", "250"); !hasLine(lines, "AUTH LOGIN PLAIN") {
		t.Fatalf("AUTH not offered after STARTTLS: %q", lines)
	}
	c.do("AUTH PLAIN "+b64("\x00jane\x00secret"), "235 2.7.0")

	c2 := greeted(t, startServer(t, &Server{}))
	c2.do("AUTH PLAIN "+b64("\x00jane\x00secret"), "502 5.5.1") // not configured at all
}

func TestAuthPlain(t *testing.T) {
	rec := &recorder{}
	srv := authServer(rec)
	srv.AllowInsecureAuth = true
	addr := startServer(t, srv)
	c := greeted(t, addr)
	c.do("MAIL FROM:<a@example.org>", "250")
	c.do("AUTH PLAIN "+b64("\x00jane\x00secret"), "503 5.5.1") // not in a transaction (RFC 4954 4)
	c.do("RSET", "250")
	c.do("AUTH PLAIN "+b64("\x00jane\x00wrong"), "535 5.7.8")
	c.do("AUTH PLAIN "+b64("jane\x00jane\x00secret"), "235 2.7.0 Authentication successful")
	c.do("AUTH PLAIN "+b64("\x00jane\x00secret"), "503 5.5.1") // once per session
	if lines := c.do("EHLO client.example", "250"); hasLine(lines, "AUTH LOGIN PLAIN") {
		t.Fatalf("AUTH offered after AUTH: %q", lines)
	}
	c.do("MAIL FROM:<a@example.org> AUTH=jane+40example.org", "250")
	c.do("RCPT TO:<b@example.org>", "250")
	c.do("DATA", "354")
	c.send("x\r\n.\r\n")
	c.expect("250")
	d := rec.delivered()[0]
	if d.env.AuthIdentity != "jane" || d.env.MailAuth != "jane@example.org" {
		t.Fatalf("AuthIdentity %q, MailAuth %q", d.env.AuthIdentity, d.env.MailAuth)
	}
	if !strings.Contains(d.data, " with ESMTPA id ") {
		t.Fatalf("Received: %q", d.data)
	}

	// PLAIN without an initial response: an empty challenge, "334 ".
	c = greeted(t, addr)
	c.do("AUTH PLAIN", "334 ")
	c.do(b64("\x00jane\x00secret"), "235 2.7.0")
	// The identity asked for is the callback's to allow.
	c = greeted(t, addr)
	c.do("AUTH PLAIN "+b64("boss\x00jane\x00secret"), "535 5.7.8 Not authorized")
	// Malformed messages.
	c.do("AUTH PLAIN "+b64("jane secret"), "501 5.5.2")
	c.do("AUTH PLAIN not*base64", "501 5.5.2")
	c.do("AUTH PLAIN", "334 ")
	c.do("*", "501 5.5.2 Authentication cancelled")
	c.do("AUTH CRAM-MD5", "504 5.5.4")
	c.do("AUTH", "501 5.5.4")
	// A failing directory is a temporary failure, its text not shown.
	c.do("AUTH PLAIN "+b64("\x00broken\x00x"), "451 4.3.0 Requested action aborted")
}

func TestAuthLogin(t *testing.T) {
	srv := authServer(&recorder{})
	srv.AllowInsecureAuth = true
	addr := startServer(t, srv)
	c := greeted(t, addr)
	c.do("AUTH LOGIN", "334 "+b64("Username:"))
	c.do(b64("jane"), "334 "+b64("Password:"))
	c.do(b64("secret"), "235 2.7.0")

	// The username as initial response, as Outlook sends it.
	c = greeted(t, addr)
	c.do("AUTH login "+b64("jane"), "334 "+b64("Password:"))
	c.do(b64("secret"), "235")
}

// TestAuthFailuresClose: the third failure ends the session with 421.
func TestAuthFailuresClose(t *testing.T) {
	srv := authServer(&recorder{})
	srv.AllowInsecureAuth = true
	c := greeted(t, startServer(t, srv))
	c.do("AUTH PLAIN "+b64("\x00jane\x00a"), "535")
	c.do("AUTH PLAIN "+b64("\x00jane\x00b"), "535")
	c.cmd("AUTH PLAIN " + b64("\x00jane\x00c"))
	c.expect("535")
	c.expect("421 4.7.0")
	c.expectClosed()
}

// TestRequireAuth: MAIL before AUTH gets 530 5.7.0 (RFC 4954 6).
func TestRequireAuth(t *testing.T) {
	srv := authServer(&recorder{})
	srv.AllowInsecureAuth, srv.RequireAuth = true, true
	c := greeted(t, startServer(t, srv))
	c.do("MAIL FROM:<a@example.org>", "530 5.7.0")
	c.do("AUTH PLAIN "+b64("\x00jane\x00secret"), "235")
	c.do("MAIL FROM:<a@example.org>", "250")
}

// TestAuthLongInitialResponse: AUTH lines may be longer than other command
// lines (RFC 4954 4: at least 12288 octets).
func TestAuthLongInitialResponse(t *testing.T) {
	srv := authServer(&recorder{})
	srv.AllowInsecureAuth = true
	c := greeted(t, startServer(t, srv))
	long := b64("\x00jane\x00" + strings.Repeat("p", 3000))
	c.do("AUTH PLAIN "+long, "535 5.7.8")
	c.do("AUTH PLAIN "+b64(strings.Repeat("p", 10000)), "500 5.5.2 Line too long")
	c.do("NOOP "+strings.Repeat("x", 600), "500 5.5.2")
}

// TestAuthMechanism: a mechanism of the user's, with a challenge.
func TestAuthMechanism(t *testing.T) {
	srv := &Server{AllowInsecureAuth: true, AuthMechanisms: map[string]func(*Envelope) AuthMechanism{
		"X-ECHO": func(*Envelope) AuthMechanism { return &echoAuth{} },
	}}
	c := greeted(t, startServer(t, srv))
	if lines := c.do("EHLO client.example", "250"); !hasLine(lines, "AUTH X-ECHO") {
		t.Fatalf("EHLO: %q", lines)
	}
	c.do("AUTH X-ECHO", "334 "+b64("say the word"))
	c.do(b64("please"), "235 2.7.0")
}

// echoAuth asks for "please".
type echoAuth struct{ asked bool }

func (a *echoAuth) Next(ctx context.Context, response []byte) ([]byte, string, bool, error) {
	if !a.asked {
		a.asked = true
		return []byte("say the word"), "", false, nil
	}
	if string(response) != "please" {
		return nil, "", true, ErrAuthFailed
	}
	return nil, "polite", true, nil
}

// TestAuthSecretsNotLogged: neither the password nor the exchange reaches
// the log.
func TestAuthSecretsNotLogged(t *testing.T) {
	var buf syncBuffer
	srv := authServer(&recorder{})
	srv.AllowInsecureAuth = true
	srv.Logger = slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c := greeted(t, startServer(t, srv))
	c.do("AUTH PLAIN "+b64("\x00jane\x00wrongsecret"), "535")
	c.do("AUTH LOGIN", "334")
	c.do(b64("jane"), "334")
	c.do(b64("secret"), "235")
	c.do("QUIT", "221")
	c.expectClosed()
	log := buf.String()
	for _, secret := range []string{"secret", b64("secret"), b64("\x00jane\x00wrongsecret")} {
		if strings.Contains(log, secret) {
			t.Fatalf("log holds %q:\n%s", secret, log)
		}
	}
	if !strings.Contains(log, "authenticated") {
		t.Fatalf("log lacks the authentication:\n%s", log)
	}
}

func TestDecodeXtext(t *testing.T) {
	for _, tc := range []struct {
		in, out string
		ok      bool
	}{
		{"abc", "abc", true},
		{"a+2Bb", "a+b", true},
		{"jane+40example.org", "jane@example.org", true},
		{"<>", "<>", true},
		{"a+2b", "", false}, // lower-case hex (RFC 3461 4)
		{"a+2", "", false},
		{"a=b", "", false},
		{"a b", "", false},
		{"caf\xc3\xa9", "", false},
	} {
		out, ok := decodeXtext(tc.in)
		if out != tc.out || ok != tc.ok {
			t.Errorf("decodeXtext(%q) = %q, %v; want %q, %v", tc.in, out, ok, tc.out, tc.ok)
		}
	}
}

// FuzzAuthPlain: PLAIN's message parser never panics, passes on only the
// three NUL-separated parts, and refuses everything else with a reply.
func FuzzAuthPlain(f *testing.F) {
	for _, seed := range []string{"\x00jane\x00secret", "boss\x00jane\x00pw", "", "\x00\x00", "a\x00b\x00c\x00d", "no nul", "\x00\x00pw"} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		var got []string
		srv := &Server{Authenticate: func(ctx context.Context, env *Envelope, identity, username, password string) error {
			got = []string{identity, username, password}
			return nil
		}}
		a := &plainAuth{srv: srv, env: &Envelope{}}
		_, identity, done, err := a.Next(context.Background(), msg)
		if !done {
			t.Fatal("PLAIN with a message is not done")
		}
		if err != nil {
			if _, ok := err.(*Reply); !ok || got != nil {
				t.Fatalf("error %v, callback saw %q", err, got)
			}
			return
		}
		if strings.Join(got, "\x00") != string(msg) || got[1] == "" {
			t.Fatalf("callback saw %q for %q", got, msg)
		}
		if identity != got[0] && (got[0] != "" || identity != got[1]) {
			t.Fatalf("identity %q for %q", identity, got)
		}
	})
}

// FuzzDecodeAuthResponse: a response is "*", "=", or base64 that decodes.
func FuzzDecodeAuthResponse(f *testing.F) {
	for _, seed := range []string{"*", "=", "", "AGphbmUAc2VjcmV0", "not*base64", "YQ", "YQ=="} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b, r := decodeAuthResponse(s)
		switch {
		case r != nil && b != nil:
			t.Fatal("both a response and a reply")
		case r != nil && r.Code != 501:
			t.Fatalf("reply %v", r)
		case r == nil && s != "=" && base64.StdEncoding.EncodeToString(b) != s:
			t.Fatalf("%q decoded to %q, which does not encode back", s, b)
		}
	})
}

// FuzzDecodeXtext: whatever decodes, encoded again, decodes the same.
func FuzzDecodeXtext(f *testing.F) {
	for _, seed := range []string{"abc", "a+2Bb", "jane+40example.org", "<>", "+", "+4", "+ZZ", "a=b"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, ok := decodeXtext(s)
		if !ok {
			return
		}
		var enc strings.Builder
		for i := 0; i < len(d); i++ {
			if c := d[i]; c < '!' || c > '~' || c == '+' || c == '=' {
				fmt.Fprintf(&enc, "+%02X", c)
			} else {
				enc.WriteByte(c)
			}
		}
		if d2, ok := decodeXtext(enc.String()); !ok || d2 != d {
			t.Fatalf("%q -> %q -> %q -> %q, %v", s, d, enc.String(), d2, ok)
		}
	})
}
