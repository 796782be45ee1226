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
func loadPasswords(file string) (passwords, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("-auth-file: %v", err)
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
			return nil, fmt.Errorf("-auth-file %s:%d: want user:password", file, n)
		case strings.TrimSpace(user) != user:
			return nil, fmt.Errorf("-auth-file %s:%d: user name %q has spaces around it", file, n, user)
		case users[user] != "":
			return nil, fmt.Errorf("-auth-file %s:%d: user %q is listed twice", file, n, user)
		}
		users[user] = password
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("-auth-file %s: %v", file, err)
	}
	if len(users) == 0 {
		return nil, fmt.Errorf("-auth-file %s: no users", file)
	}
	return users, nil
}

// authenticate is the server's Authenticate callback. The identity the
// session carries from then on (env.AuthIdentity, which lets a client
// relay past -accept-domains) is the user name: a client may not act for
// another user, so a PLAIN authorization identity other than its own user
// name is refused like a wrong password.
func (p passwords) authenticate(ctx context.Context, env *smtpd.Envelope, identity, username, password string) error {
	if identity != "" && identity != username {
		return smtpd.ErrAuthFailed
	}
	want, ok := p[username]
	// The digests have the same length whatever the passwords, so that
	// ConstantTimeCompare, which returns at once on different lengths,
	// tells nothing about the password's length either through its time.
	got, stored := sha256.Sum256([]byte(password)), sha256.Sum256([]byte(want))
	if subtle.ConstantTimeCompare(got[:], stored[:]) != 1 || !ok {
		return smtpd.ErrAuthFailed
	}
	return nil
}
