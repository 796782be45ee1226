package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"os"
	"strings"

	"smtpd/smtpd"
)

// passwords are the users of -auth-file and their passwords, for AUTH
// PLAIN and LOGIN (RFC 4954, RFC 4616). They are kept in the clear, as in
// the file: this is a development sink, not a submission server, and a
// PLAIN or LOGIN exchange carries the password in the clear anyway.
type passwords map[string]string

// loadPasswords reads -auth-file: one "user:password" a line, the password
// being everything after the first colon, spaces included; blank lines and
// lines starting with "#" are skipped. A line that is not of that form
// stops the program, naming the file and the line, since a typo would
// otherwise lock a user out with no clue why.
//
// flag names the flag in errors: -auth-file, or -http-auth, which reads
// the same format.
func loadPasswords(flag, file string) (passwords, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", flag, err)
	}
	users := passwords{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSuffix(sc.Text(), "\r")
		if trimmed := strings.TrimSpace(line); trimmed == "" || trimmed[0] == '#' {
			continue
		}
		user, password, ok := strings.Cut(line, ":")
		switch {
		case !ok || user == "" || password == "":
			return nil, fmt.Errorf("%s %s:%d: want user:password", flag, file, n)
		case strings.TrimSpace(user) != user:
			return nil, fmt.Errorf("%s %s:%d: user name %q has spaces around it", flag, file, n, user)
		case users[user] != "":
			return nil, fmt.Errorf("%s %s:%d: user %q is listed twice", flag, file, n, user)
		}
		users[user] = password
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s %s: %v", flag, file, err)
	}
	if len(users) == 0 {
		return nil, fmt.Errorf("%s %s: no users", flag, file)
	}
	return users, nil
}

// authenticate is the server's Authenticate callback. The identity the
// session carries from then on (env.AuthIdentity, which lets a client
// relay past -accept-domains) is the user name: a client may not act for
// another user, so a PLAIN authorization identity other than its own user
// name is refused like a wrong password.
func (p passwords) authenticate(ctx context.Context, env *smtpd.Envelope, identity, username, password string) error {
	if identity != "" && identity != username || !p.check(username, password) {
		return smtpd.ErrAuthFailed
	}
	return nil
}

// check reports whether password is user's, in a time that tells nothing
// about either: for AUTH, and for -http-auth's HTTP Basic authentication.
func (p passwords) check(user, password string) bool {
	want, ok := p[user]
	// The digests have the same length whatever the passwords, so that
	// ConstantTimeCompare, which returns at once on different lengths,
	// tells nothing about the password's length either through its time.
	got, stored := sha256.Sum256([]byte(password)), sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(got[:], stored[:]) == 1 && ok
}
