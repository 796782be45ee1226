package main

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// users is an -auth-file with a comment, a blank line, a password with
// spaces and one with colons.
const users = "# who may relay\n\nalice:s3cret pass\r\nbob:pw:with:colons\n"

func writeUsers(t *testing.T) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "users")
	if err := os.WriteFile(f, []byte(users), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// -auth-file: AUTH PLAIN and LOGIN after STARTTLS, for the users in the
// file only, as themselves only. An authenticated client may relay past
// -accept-domains; a client that failed to authenticate may not.
func TestAuth(t *testing.T) {
	md := filepath.Join(t.TempDir(), "Maildir")
	s := start(t, "-maildir", md, "-tls-self-signed", "-auth-file", writeUsers(t), "-accept-domains", "example.org")

	for _, tc := range []struct {
		name string
		auth []string // the AUTH step
		want int      // its reply
	}{
		{"PLAIN", []string{"auth", "PLAIN", "alice", "s3cret pass"}, 235},
		{"LOGIN, colons in the password", []string{"auth", "LOGIN", "bob", "pw:with:colons"}, 235},
		{"PLAIN as oneself", []string{"auth", "PLAIN", "alice", "s3cret pass", "alice"}, 235},
		{"PLAIN, wrong password", []string{"auth", "PLAIN", "alice", "s3cret"}, 535},
		{"LOGIN, wrong password", []string{"auth", "LOGIN", "alice", "s3cret pass "}, 535},
		{"unknown user", []string{"auth", "PLAIN", "carol", "s3cret pass"}, 535},
		{"PLAIN acting for another user", []string{"auth", "PLAIN", "alice", "s3cret pass", "bob"}, 535},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := session(t, s.addr, "smtp", "", []string{"ehlo"}, []string{"starttls"}, []string{"ehlo"}, tc.auth,
				[]string{"mail", "alice@example.org"}, []string{"rcpt", "x@elsewhere.example"},
				[]string{"rcpt", "bob@example.org"}, []string{"data", "Subject: " + tc.name + "\n\nx\n"}, []string{"quit"})
			if !res[3].hasFeature("auth") || !strings.Contains(strings.Join(res[3].Features, " "), "PLAIN") {
				t.Errorf("EHLO after STARTTLS does not offer AUTH PLAIN: %v", res[3].Features)
			}
			if res[4].Code != tc.want {
				t.Fatalf("AUTH: %+v, want %d", res[4], tc.want)
			}
			relay, local := res[6], res[7]
			if tc.want == 235 && relay.Code != 250 {
				t.Errorf("authenticated relay refused: %+v", relay)
			}
			if tc.want != 235 && (relay.Code != 550 || !strings.Contains(relay.Text, "5.7.1")) {
				t.Errorf("unauthenticated relay: %+v, want 550 5.7.1", relay)
			}
			if local.Code != 250 || res[8].Code != 250 {
				t.Errorf("RCPT for -accept-domains %+v, DATA %+v", local, res[8])
			}
		})
	}

	// Without TLS, AUTH is neither offered nor accepted: the password
	// would cross the network in the clear.
	res := session(t, s.addr, "smtp", "", []string{"ehlo"}, []string{"auth", "PLAIN", "alice", "s3cret pass"}, []string{"quit"})
	if res[1].hasFeature("auth") || res[2].Code != 538 {
		t.Errorf("AUTH before TLS: offered %v, answered %+v", res[1].Features, res[2])
	}
	s.stop()

	// RFC 3848: "A" for a message sent after AUTH.
	msgs := readMailbox(t, "maildir", md)
	if len(msgs) != 7 {
		t.Errorf("%d messages stored, want 7", len(msgs))
	}
	for _, m := range msgs {
		subject, received := m.header("Subject"), m.header("Received")
		if len(subject) != 1 || len(received) != 1 {
			t.Fatalf("Subject %q, Received %q", subject, received)
		}
		authenticated := !strings.Contains(subject[0], "wrong") && !strings.Contains(subject[0], "unknown") && !strings.Contains(subject[0], "another")
		if got := strings.Contains(received[0], "with ESMTPSA"); got != authenticated {
			t.Errorf("%s: Received %q", subject[0], received[0])
		}
	}
}

// -auth-required refuses mail before AUTH (RFC 4954 6); -auth-insecure
// offers AUTH without TLS.
func TestAuthRequiredInsecure(t *testing.T) {
	s := start(t, "-discard", "-auth-file", writeUsers(t), "-auth-required", "-auth-insecure")
	res := session(t, s.addr, "smtp", "", []string{"ehlo"}, []string{"mail", "alice@example.org"},
		[]string{"auth", "PLAIN", "alice", "s3cret pass"}, []string{"mail", "alice@example.org"}, []string{"quit"})
	if !res[1].hasFeature("auth") {
		t.Errorf("AUTH not offered without TLS despite -auth-insecure: %v", res[1].Features)
	}
	if res[2].Code != 530 || res[3].Code != 235 || res[4].Code != 250 {
		t.Errorf("MAIL before AUTH %+v (want 530), AUTH %+v, MAIL after %+v", res[2], res[3], res[4])
	}
	s.stop()
}
