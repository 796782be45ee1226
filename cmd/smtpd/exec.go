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
	"syscall"
	"time"

	"smtpd/smtpd"
)

// execStore pipes each message to "sh -c command", as a delivery program
// such as procmail or dovecot-lda expects: the message on standard input,
// the envelope in the environment, and the verdict in the exit status
// (sysexits.h, as sendmail's and Postfix's pipe delivery read it):
//
//	0        delivered: 250
//	75       EX_TEMPFAIL, try again later: 451
//	anything else, or death by a signal: 554
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
// up on it.
const execWaitDelay = 5 * time.Second

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
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = execWaitDelay

	err = cmd.Run()
	status := "exit 0"
	if cmd.ProcessState != nil {
		status = cmd.ProcessState.String()
	}
	where := fmt.Sprintf("command %s", status)
	if o := out.String(); o != "" {
		where += fmt.Sprintf(", output %q", o)
	}

	var exitErr *exec.ExitError
	switch {
	case err == nil:
		return where, nil
	case ctx.Err() != nil:
		// Killed because the client left or the delivery took too long:
		// the client, if still there, may try again.
		return where, fmt.Errorf("%s: %w", where, ctx.Err())
	case errors.As(err, &exitErr) && exitErr.ExitCode() == exTempFail:
		return where, replyExecTempFail
	case errors.As(err, &exitErr):
		return where, replyExecFailed
	default:
		// sh did not start, or its output could not be read: our
		// failure, not the message's.
		return where, err
	}
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
