package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"smtpd/smtpd"
)

// execStore pipes each message to "sh -c command", as a delivery program
// such as procmail or dovecot-lda expects: the message on standard input,
// the envelope in the environment, and the verdict in the exit status of
// sh (sysexits.h, as sendmail's and Postfix's pipe delivery read it):
//
//	0                    delivered: 250
//	75                   EX_TEMPFAIL, try again later: 451
//	killed by a signal   451: the command did not finish (an out-of-memory
//	                     kill, say), which is no verdict on the message
//	anything else        554
//
// The exit status alone decides. A process the command leaves behind (a
// background child) may keep its output open; once sh has exited, the
// reply waits at most execWaitDelay for it, and a 0 is still a 250: a
// temporary failure there would make the client send a message that is
// already stored again.
//
// The command runs in a process group of its own (setProcessGroup), which
// is killed whole when the delivery is cancelled (the client left,
// -delivery-timeout, the end of -shutdown-timeout, a second signal) and
// when sh dies by a signal: nothing it started keeps running on behalf of a
// delivery the client will try again.
//
// The command's output goes to the log, cut short, never to the client:
// it may say anything about the machine.
type execStore struct {
	command string
}

var (
	replyExecTempFail = &smtpd.Reply{Code: 451, Enhanced: "4.3.0", Text: "Temporary delivery failure; try again later"}
	replyExecFailed   = &smtpd.Reply{Code: 554, Enhanced: "5.3.0", Text: "Delivery failed"}
)

// exTempFail is EX_TEMPFAIL of sysexits.h.
const exTempFail = 75

// execOutputMax is how much of the command's output the log keeps.
const execOutputMax = 2048

// execWaitDelay is how long, after the command exited or was killed, its
// output pipe may stay open (held by a background child) before Wait gives
// up on it. What the command itself wrote is in the pipe when it exits, so
// this only needs to cover the copying goroutine's scheduling; it delays
// the reply when a background child holds the pipe.
const execWaitDelay = time.Second

func (e *execStore) store(ctx context.Context, env *smtpd.Envelope, msg io.Reader) (string, error) {
	// Spooled first: the command sees only complete messages, and a
	// message the library refuses midway never reaches it.
	s, r, err := spoolAll(msg)
	if err != nil {
		return "", err
	}
	defer s.Close()

	cmd := exec.CommandContext(ctx, "sh", "-c", e.command)
	cmd.Stdin = r
	out := &limitedBuffer{max: execOutputMax}
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.Env = append(os.Environ(),
		"SMTPD_SENDER="+env.ReversePath.String(),
		"SMTPD_RECIPIENTS="+forwardPaths(env),
		"SMTPD_ID="+env.ID,
		"SMTPD_REMOTE_ADDR="+addrString(env),
		"SMTPD_HELO="+env.Hello,
	)
	// Its own process group, so that a cancelled delivery kills the
	// whole pipeline, not only sh; and so that a ^C at the terminal
	// reaches smtpd alone, which lets deliveries in flight finish.
	setProcessGroup(cmd)
	cmd.WaitDelay = execWaitDelay

	err = cmd.Run()
	ps := cmd.ProcessState
	if ps == nil {
		// sh did not start: our failure, not the message's.
		return "", err
	}
	where := "command " + ps.String()
	if o := out.String(); o != "" {
		where += fmt.Sprintf(", output %q", o)
	}
	switch {
	case ps.Success() && (err == nil || errors.Is(err, exec.ErrWaitDelay)):
		return where, nil
	case ps.Success():
		// The command exited 0, but its input could not be copied
		// whole (the spool failed): it may have stored part of the
		// message; a copy in full comes when the client tries again.
		return where, fmt.Errorf("%s: %w", where, err)
	case !ps.Exited() || ctx.Err() != nil:
		// Killed by a signal: by our cancellation (on Windows, where
		// there are no signals, that is the only kill seen), or by
		// someone else (the kernel, out of memory). Either way it did
		// not finish, and what it started must not go on.
		killProcessGroup(cmd)
		if ctx.Err() != nil {
			return where, fmt.Errorf("%s: %w", where, context.Cause(ctx))
		}
		return where, errors.New(where)
	case ps.ExitCode() == exTempFail:
		return where, replyExecTempFail
	}
	return where, replyExecFailed
}

// forwardPaths returns the recipients' addresses separated by spaces, for
// SMTPD_RECIPIENTS.
func forwardPaths(env *smtpd.Envelope) string {
	s := make([]string, len(env.Recipients))
	for i, r := range env.Recipients {
		s[i] = r.ForwardPath.String()
	}
	return strings.Join(s, " ")
}

// limitedBuffer keeps the first max bytes written to it and counts the rest.
type limitedBuffer struct {
	mu      sync.Mutex
	max     int
	b       []byte
	dropped int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := min(len(p), l.max-len(l.b))
	l.b = append(l.b, p[:n]...)
	l.dropped += len(p) - n
	return len(p), nil
}

func (l *limitedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := strings.TrimSpace(string(l.b))
	if l.dropped > 0 {
		s += fmt.Sprintf(" [%d more bytes]", l.dropped)
	}
	return s
}
