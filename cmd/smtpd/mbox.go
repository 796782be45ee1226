package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"smtpd/smtpd"
)

// mbox appends each message to an mbox file in the mboxrd format
// (https://doc.dovecot.org/admin_manual/mailbox_formats/mbox/, and
// RFC 4155 for the family): a "From " line, the message with LF line ends
// and every line that starts with ">*From " quoted with one more ">", and a
// blank line.
//
// The message is spooled whole first, so the file is locked only while it
// is written, not while a slow client sends; the lock is flock(2), which
// mail readers such as mutt and Python's mailbox use. A failed append is
// cut off again, so the file never holds part of a message.
type mbox struct {
	path string
}

// openMbox checks that path can be opened for appending, creating it when
// missing, and locked.
func openMbox(path string) (*mbox, error) {
	f, err := os.OpenFile(path, mboxFlags, 0o600)
	if err != nil {
		return nil, fmt.Errorf("-mbox: %v", err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("-mbox: %s is not a regular file", path)
	}
	// A mail reader may hold the lock now; what matters is that the
	// file system and the platform can lock at all.
	locked, err := tryLock(f)
	if err != nil {
		return nil, fmt.Errorf("-mbox: %v", err)
	}
	if locked {
		unlock(f)
	}
	return &mbox{path: path}, nil
}

// lockRetry is how often a locked mbox is tried again; the wait ends with
// the delivery's context.
const lockRetry = 50 * time.Millisecond

func (m *mbox) store(ctx context.Context, env *smtpd.Envelope, msg io.Reader) (string, error) {
	s, err := newSpool(msg)
	if err != nil {
		return "", err
	}
	defer s.Close()

	// Opened for each message rather than once: a mail reader may replace
	// the file (when it expunges), and appending to the old one would lose
	// mail.
	f, err := os.OpenFile(m.path, mboxFlags, 0o600)
	if err != nil {
		return "", err
	}
	defer f.Close()
	if err := lock(ctx, f); err != nil {
		return "", err
	}
	defer unlock(f)

	fi, err := f.Stat()
	if err != nil {
		return "", err
	}
	size := fi.Size()
	if _, err := f.Seek(size, io.SeekStart); err != nil { // for Windows: see mboxFlags
		return "", err
	}
	if err := m.append(ctx, f, size, env, s); err != nil {
		// Cut the file back, so it never holds part of a message.
		if terr := f.Truncate(size); terr == nil {
			f.Sync()
		} else {
			err = fmt.Errorf("%w; and truncating %s back to %d bytes failed: %v", err, m.path, size, terr)
		}
		return "", err
	}
	return m.path, nil
}

// append writes the message at the end of f, which is size bytes long,
// and syncs it.
func (m *mbox) append(ctx context.Context, f *os.File, size int64, env *smtpd.Envelope, s *spool) error {
	bw := bufio.NewWriterSize(f, 64<<10)

	// A "From " line must start a line and follow a blank line; if the
	// file does not end so (another program wrote it), make it.
	if size > 0 {
		var tail [2]byte
		n, _ := f.ReadAt(tail[:min(size, 2)], max(size-2, 0))
		switch {
		case n == 0:
		case tail[n-1] != '\n':
			bw.WriteString("\n\n")
		case n == 2 && tail[0] != '\n':
			bw.WriteString("\n")
		}
	}

	fmt.Fprintf(bw, "From %s %s\n", fromLineSender(env), time.Now().UTC().Format(time.ANSIC))
	r, err := s.reader()
	if err != nil {
		return err
	}
	qw := &mboxrdWriter{w: bw}
	lw := &lfWriter{w: qw}
	if _, err := io.Copy(lw, r); err != nil {
		return err
	}
	if err := lw.flush(); err != nil {
		return err
	}
	if err := qw.flush(); err != nil {
		return err
	}
	if !qw.atLineStart() {
		bw.WriteString("\n")
	}
	bw.WriteString("\n") // the blank line that ends a message
	if err := bw.Flush(); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if size == 0 {
		// The file may be new: make its directory entry durable too.
		if err := syncDir(filepath.Dir(m.path)); err != nil {
			return err
		}
	}
	// As for Maildir: a client that will not see the 250 sends again.
	return ctx.Err()
}

// lock takes an exclusive lock on f (tryLock), waiting while another
// process holds it, until ctx ends.
func lock(ctx context.Context, f *os.File) error {
	for {
		locked, err := tryLock(f)
		if err != nil {
			return fmt.Errorf("locking %s: %w", f.Name(), err)
		}
		if locked {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("locking %s: %w", f.Name(), ctx.Err())
		case <-time.After(lockRetry):
		}
	}
}

// fromLineSender is the sender on an mbox "From " line: the reverse-path,
// MAILER-DAEMON for the null one (the usual convention), with white space
// replaced since the line is split on it.
func fromLineSender(env *smtpd.Envelope) string {
	if env.ReversePath.IsNull() {
		return "MAILER-DAEMON"
	}
	return strings.Map(func(r rune) rune {
		if r == ' ' || r == '\t' {
			return '_'
		}
		return r
	}, env.ReversePath.String())
}

// mboxrdWriter quotes "From " lines the mboxrd way: a line that matches
// ">*From " gets one more ">" in front, so that a reader can take one off
// every such line and get the message back exactly (unlike mboxo, which
// quotes only "From "). It expects LF line ends.
type mboxrdWriter struct {
	w io.Writer
	// pending holds the start of the current line while it may still turn
	// out to be ">*From ": at most that many bytes.
	pending []byte
	// mid is set once the current line's start has been decided; the rest
	// of the line is copied through.
	mid bool
}

var fromPrefix = []byte("From ")

func (q *mboxrdWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		if q.mid {
			i := bytes.IndexByte(p, '\n')
			if i < 0 {
				_, err := q.w.Write(p)
				return n, err
			}
			if _, err := q.w.Write(p[:i+1]); err != nil {
				return 0, err
			}
			p = p[i+1:]
			q.mid = false
			continue
		}
		// At the start of a line: take one byte into pending while the
		// line may still be ">*From ".
		c := p[0]
		rest := q.pending[countGT(q.pending):]
		switch {
		case len(rest) == 0 && c == '>':
			q.pending = append(q.pending, c)
			p = p[1:]
		case len(rest) < len(fromPrefix) && fromPrefix[len(rest)] == c:
			q.pending = append(q.pending, c)
			p = p[1:]
			if len(rest)+1 == len(fromPrefix) {
				if _, err := q.w.Write([]byte{'>'}); err != nil {
					return 0, err
				}
				if err := q.flush(); err != nil {
					return 0, err
				}
				q.mid = true
			}
		default:
			// Not a "From " line: write what was held and copy the rest
			// of the line, c included (it may be the LF that ends it).
			if err := q.flush(); err != nil {
				return 0, err
			}
			q.mid = true
		}
	}
	return n, nil
}

// flush writes the bytes held at the start of a line; the line goes on
// after them.
func (q *mboxrdWriter) flush() error {
	if len(q.pending) == 0 {
		return nil
	}
	_, err := q.w.Write(q.pending)
	q.pending = q.pending[:0]
	q.mid = true
	return err
}

// atLineStart reports whether the output so far ends with a complete line
// (or is empty); call it after flush.
func (q *mboxrdWriter) atLineStart() bool { return !q.mid && len(q.pending) == 0 }

func countGT(b []byte) int {
	i := 0
	for i < len(b) && b[i] == '>' {
		i++
	}
	return i
}
