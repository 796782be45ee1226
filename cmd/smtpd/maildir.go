package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"smtpd/smtpd"
)

// maildir stores each message as a file in a Maildir
// (https://cr.yp.to/proto/maildir.html): written to tmp/ under a unique
// name, synced, then renamed into new/, where mail readers look. A reader
// never sees a partial message, and a crash leaves at most a file in tmp/,
// which Maildir readers clean up.
type maildir struct {
	dir  string
	host string // the host part of unique names
	pid  int
	seq  atomic.Uint64 // deliveries by this process, for unique names
}

// openMaildir creates dir with its tmp, new and cur subdirectories when
// missing, and checks that a file can be made in it.
func openMaildir(dir string) (*maildir, error) {
	for _, sub := range []string{"tmp", "new", "cur"} {
		// 0700: mail is private (the Maildir convention).
		if err := mkdirSynced(filepath.Join(dir, sub), 0o700); err != nil {
			return nil, fmt.Errorf("-maildir: %v", err)
		}
	}
	probe, err := os.CreateTemp(filepath.Join(dir, "tmp"), "probe-")
	if err != nil {
		return nil, fmt.Errorf("-maildir: cannot write in %s: %v", dir, err)
	}
	probe.Close()
	os.Remove(probe.Name())
	return &maildir{dir: dir, host: maildirHost(), pid: os.Getpid()}, nil
}

// maildirHost is the host part of a unique name: the machine's name, with
// "/" and ":" written as octal escapes, as the Maildir spec asks, since they
// would break the file name and the ":2," info suffix.
func maildirHost() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		h = "localhost"
	}
	return strings.NewReplacer("/", `\057`, ":", `\072`).Replace(h)
}

// uniqueName returns a new file name: "seconds.MmicrosecondsPpidQn.host",
// the modern form of the spec's "time.pid.host". Time, process ID and the
// process's delivery count make it unique on this host.
func (m *maildir) uniqueName() string {
	now := time.Now()
	return fmt.Sprintf("%d.M%dP%dQ%d.%s", now.Unix(), now.Nanosecond()/1000, m.pid, m.seq.Add(1), m.host)
}

func (m *maildir) store(ctx context.Context, env *smtpd.Envelope, msg io.Reader) (string, error) {
	name := m.uniqueName()
	tmp := filepath.Join(m.dir, "tmp", name)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", err
	}
	// Until the rename, any failure removes the file: no half message in
	// tmp/ either.
	committed := false
	defer func() {
		if !committed {
			f.Close()
			os.Remove(tmp)
		}
	}()

	bw := bufio.NewWriterSize(f, 64<<10)
	lw := &lfWriter{w: bw}
	if _, err := io.Copy(lw, msg); err != nil {
		return "", err
	}
	if err := lw.flush(); err != nil {
		return "", err
	}
	if err := bw.Flush(); err != nil {
		return "", err
	}
	if err := f.Sync(); err != nil {
		return "", err
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	// A cancelled context means the client will not see our 250 (the
	// connection is gone, or the delivery took too long): do not keep a
	// message the client will send again.
	if err := ctx.Err(); err != nil {
		return "", err
	}
	final := filepath.Join(m.dir, "new", name)
	if err := os.Rename(tmp, final); err != nil {
		return "", err
	}
	// The rename is durable only once the directory is synced.
	if err := syncDir(filepath.Join(m.dir, "new")); err != nil {
		os.Remove(final)
		return "", err
	}
	committed = true
	return final, nil
}

// mkdirSynced makes dir and its missing parents, as os.MkdirAll does, and
// syncs the parent of each directory it made: a message synced into new/ is
// not durable while new/ itself may vanish in a crash.
func mkdirSynced(dir string, perm os.FileMode) error {
	var made []string // the directories missing, deepest first
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		if _, err := os.Lstat(d); !errors.Is(err, fs.ErrNotExist) {
			break
		}
		made = append(made, d)
		if filepath.Dir(d) == d {
			break
		}
	}
	if err := os.MkdirAll(dir, perm); err != nil {
		return err
	}
	for _, d := range made {
		if err := syncDir(filepath.Dir(d)); err != nil {
			return err
		}
	}
	return nil
}

// syncDir flushes a directory's entries to disk, so that a file created or
// renamed in it survives a crash. Windows has no way to do that
// (FlushFileBuffers refuses a directory, with "access denied"); there it
// does nothing, and NTFS's metadata journal is all there is.
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
