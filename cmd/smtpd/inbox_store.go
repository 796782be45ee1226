package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// A source is where the inbox reads messages from: the store's Maildir or
// mbox, or its own memory. The inbox calls it with its lock held, so a
// source needs no lock of its own.
type source interface {
	// scan indexes every message the store holds, oldest first.
	scan(add addFunc) error
	// stored indexes the message the store has just accepted: id is its
	// Envelope's ID, where what the store returned, content the message
	// itself for a source that keeps it (nil for the others).
	stored(id, where string, content []byte, add addFunc) error
	// read returns a message as the store holds it.
	read(loc location) ([]byte, error)
	// remove deletes the messages gone from the store and returns those
	// it deleted; all is every message indexed, for a source whose
	// locations shift (mbox).
	remove(gone, all []*entry) ([]*entry, error)
}

// addFunc indexes one message: see inbox.add.
type addFunc func(raw []byte, id string, created time.Time, loc location)

// memorySource keeps the messages of a store that cannot be read back
// (standard output, -exec, -discard) in the index itself.
type memorySource struct{}

func (memorySource) scan(addFunc) error { return nil }

func (memorySource) stored(id, where string, content []byte, add addFunc) error {
	if content == nil {
		return fmt.Errorf("larger than the %d octets the inbox keeps of a message", maxKeptMessage)
	}
	add(content, id, time.Now(), location{data: content})
	return nil
}

func (memorySource) read(loc location) ([]byte, error) { return loc.data, nil }

func (memorySource) remove(gone, _ []*entry) ([]*entry, error) { return gone, nil }

// maxKeptMessage is the largest message a memory source keeps.
const maxKeptMessage = 64 << 20

// maildirSource reads the Maildir the store writes: the files of new/,
// and of cur/, where mail readers move what they have seen.
type maildirSource struct {
	dir string
}

func (s *maildirSource) scan(add addFunc) error {
	type file struct {
		name string
		mod  time.Time
	}
	var files []file
	for _, sub := range []string{"new", "cur"} {
		entries, err := os.ReadDir(filepath.Join(s.dir, sub))
		if err != nil {
			return fmt.Errorf("-http: reading the Maildir: %v", err)
		}
		for _, de := range entries {
			// Dot files are not messages (the Maildir spec).
			if strings.HasPrefix(de.Name(), ".") || !de.Type().IsRegular() {
				continue
			}
			if info, err := de.Info(); err == nil {
				files = append(files, file{sub + "/" + de.Name(), info.ModTime()})
			}
		}
	}
	slices.SortStableFunc(files, func(a, b file) int { return a.mod.Compare(b.mod) })
	for _, f := range files {
		// A file that vanished since the listing (a reader moved or
		// deleted it) is skipped.
		if raw, err := os.ReadFile(filepath.Join(s.dir, f.name)); err == nil {
			add(raw, "", f.mod, location{name: f.name})
		}
	}
	return nil
}

func (s *maildirSource) stored(id, where string, _ []byte, add addFunc) error {
	rel, err := filepath.Rel(s.dir, where)
	if err != nil {
		return err
	}
	f, err := os.Open(where)
	if err != nil {
		return err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return err
	}
	raw, err := io.ReadAll(f)
	if err != nil {
		return err
	}
	add(raw, id, info.ModTime(), location{name: filepath.ToSlash(rel)})
	return nil
}

func (s *maildirSource) read(loc location) ([]byte, error) {
	path, err := s.find(loc.name)
	if err != nil {
		return nil, err
	}
	return os.ReadFile(path)
}

// find returns the path of the message indexed as name: a mail reader may
// have moved it from new/ to cur/ and added flags to its name
// ("NAME:2,S"), which keeps the unique part before the colon.
func (s *maildirSource) find(name string) (string, error) {
	path := filepath.Join(s.dir, filepath.FromSlash(name))
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	unique, _, _ := strings.Cut(filepath.Base(path), ":")
	for _, sub := range []string{"new", "cur"} {
		entries, _ := os.ReadDir(filepath.Join(s.dir, sub))
		for _, de := range entries {
			if de.Name() == unique || strings.HasPrefix(de.Name(), unique+":") {
				return filepath.Join(s.dir, sub, de.Name()), nil
			}
		}
	}
	return "", fmt.Errorf("%s is no longer in the Maildir: %w", unique, fs.ErrNotExist)
}

func (s *maildirSource) remove(gone, _ []*entry) ([]*entry, error) {
	var done []*entry
	var first error
	for _, e := range gone {
		path, err := s.find(e.loc.name)
		if err == nil {
			err = os.Remove(path)
		}
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			first = firstErr(first, err)
			continue
		}
		done = append(done, e)
	}
	return done, first
}

// firstErr returns the first of its errors that is not nil.
func firstErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// mboxSource reads the mbox the store appends to. Each message is indexed
// by where its entry is in the file, From line included; end is how far
// the index has read, so that a new message is found by reading what
// follows (under the lock the store appends with), not the whole file.
type mboxSource struct {
	path string
	end  int64
}

// mboxLockWait bounds a wait for the lock of the mbox.
const mboxLockWait = 10 * time.Second

// open opens the mbox for reading and writing, locked as the store locks
// it; close the file to unlock it.
func (s *mboxSource) open() (*os.File, error) {
	// Not mboxFlags: without O_APPEND, so that remove can rewrite it.
	f, err := os.OpenFile(s.path, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), mboxLockWait)
	defer cancel()
	if err := lock(ctx, f); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

func (s *mboxSource) scan(add addFunc) error {
	return s.readNew(add)
}

func (s *mboxSource) stored(_, _ string, _ []byte, add addFunc) error {
	return s.readNew(add)
}

// readNew indexes the entries after end.
func (s *mboxSource) readNew(add addFunc) error {
	f, err := s.open()
	if err != nil {
		return fmt.Errorf("-http: reading the mbox: %v", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return err
	}
	if info.Size() < s.end {
		return fmt.Errorf("%s shrank since it was read (another program rewrote it): restart smtpd to read it again", s.path)
	}
	s.end, err = scanMbox(f, s.end, add)
	return err
}

// scanMbox reads the mbox entries of f from off, where one begins, to the
// end, calls add for each, and returns where it stopped. An entry begins
// with a "From " line at the start of the file or after an empty line
// (RFC 4155 2); anything before the first is not a message.
func scanMbox(f *os.File, off int64, add addFunc) (int64, error) {
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return off, err
	}
	r := bufio.NewReaderSize(f, 64<<10)
	var cur []byte // the entry being read, nil before the first
	start, pos, blank := off, off, true
	flush := func() {
		if cur != nil {
			add(unquoteMbox(cur), "", fromLineDate(cur), location{off: start, n: int64(len(cur))})
		}
	}
	for {
		line, err := r.ReadBytes('\n')
		if blank && bytes.HasPrefix(line, fromPrefix) {
			flush()
			cur, start = []byte{}, pos
		}
		if cur != nil {
			cur = append(cur, line...)
		}
		pos += int64(len(line))
		blank = len(bytes.TrimRight(line, "\r\n")) == 0
		if err == io.EOF {
			flush()
			return pos, nil
		}
		if err != nil {
			return start, err
		}
	}
}

// unquoteMbox returns the message of an mbox entry: without its From line
// and the empty line that ends it, and with mboxrd's quoting undone (one
// ">" off each line that matches ">+From ", see mboxrdWriter).
func unquoteMbox(entry []byte) []byte {
	_, msg, _ := bytes.Cut(entry, []byte("\n"))
	if bytes.HasSuffix(msg, []byte("\n\n")) {
		msg = msg[:len(msg)-1]
	}
	out := make([]byte, 0, len(msg))
	for len(msg) > 0 {
		line, rest, found := bytes.Cut(msg, []byte("\n"))
		if n := countGT(line); n > 0 && bytes.HasPrefix(line[n:], fromPrefix) {
			line = line[1:]
		}
		out = append(out, line...)
		if found {
			out = append(out, '\n')
		}
		msg = rest
	}
	return out
}

// fromLineDate reads the date of an mbox From line, as mbox.append writes
// it ("From sender Mon Jan  2 15:04:05 2006"); now when it has none.
func fromLineDate(entry []byte) time.Time {
	line, _, _ := bytes.Cut(entry, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) >= 7 {
		if t, err := time.Parse(time.ANSIC, strings.Join(f[len(f)-5:], " ")); err == nil {
			return t
		}
	}
	return time.Now()
}

func (s *mboxSource) read(loc location) ([]byte, error) {
	f, err := s.open()
	if err != nil {
		return nil, err
	}
	defer f.Close()
	entry := make([]byte, loc.n)
	if _, err := f.ReadAt(entry, loc.off); err != nil || !bytes.HasPrefix(entry, fromPrefix) {
		return nil, fmt.Errorf("%s changed since it was read (another program rewrote it): restart smtpd to read it again", s.path)
	}
	return unquoteMbox(entry), nil
}

// remove cuts the entries gone out of the mbox, rewriting it in place
// from the first of them under the lock, as mutt does, so that the store
// (which opens the file for each message) never appends to a file that
// was replaced. The locations of the entries after them shift.
func (s *mboxSource) remove(gone, all []*entry) ([]*entry, error) {
	if len(gone) == 0 {
		return nil, nil
	}
	f, err := s.open()
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data := make([]byte, s.end)
	if info, err := f.Stat(); err != nil || info.Size() != s.end {
		return nil, fmt.Errorf("%s changed since it was read (another program wrote it): restart smtpd to read it again", s.path)
	}
	if _, err := f.ReadAt(data, 0); err != nil {
		return nil, err
	}
	ranges := make([]location, len(gone))
	for i, e := range gone {
		ranges[i] = e.loc
	}
	slices.SortFunc(ranges, func(a, b location) int { return cmp.Compare(a.off, b.off) })
	kept := make([]byte, 0, len(data))
	prev := int64(0)
	for _, r := range ranges {
		kept = append(kept, data[prev:r.off]...)
		prev = r.off + r.n
	}
	kept = append(kept, data[prev:]...)
	first := ranges[0].off // the file is unchanged before it
	if _, err := f.WriteAt(kept[first:], first); err != nil {
		return nil, err
	}
	if err := f.Truncate(int64(len(kept))); err != nil {
		return nil, err
	}
	if err := f.Sync(); err != nil {
		return nil, err
	}
	// cutBefore[i] is how much was cut before ranges[i].
	cutBefore := make([]int64, len(ranges)+1)
	for i, r := range ranges {
		cutBefore[i+1] = cutBefore[i] + r.n
	}
	for _, e := range all {
		i, _ := slices.BinarySearchFunc(ranges, e.loc.off, func(r location, off int64) int { return cmp.Compare(r.off, off) })
		e.loc.off -= cutBefore[i]
	}
	s.end = int64(len(kept))
	return gone, nil
}
