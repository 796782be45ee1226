package main

import (
	"bufio"
	"bytes"
	"io"
	"os"
)

// spool holds a whole message before it goes where it belongs, so that
// only a complete message is ever appended to an mbox, printed or handed to
// a command. Small messages stay in memory; larger ones go to a temporary
// file that is unlinked at once, so that nothing is left behind whatever
// happens to the process.
type spool struct {
	mem bytes.Buffer
	f   *os.File
}

// spoolMemory is how much of a message a spool keeps in memory: enough for
// most mail, little enough for -max-conns sessions at once.
const spoolMemory = 256 << 10

// newSpool reads all of msg into a spool. It fails, keeping nothing, when
// msg fails, as when the client breaks a limit.
func newSpool(msg io.Reader) (*spool, error) {
	s := &spool{}
	if _, err := io.Copy(s, msg); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// spoolAll spools msg and returns the spool, to be closed, and a reader of
// the message from its start.
func spoolAll(msg io.Reader) (*spool, io.Reader, error) {
	s, err := newSpool(msg)
	if err != nil {
		return nil, nil, err
	}
	r, err := s.reader()
	if err != nil {
		s.Close()
		return nil, nil, err
	}
	return s, r, nil
}

func (s *spool) Write(p []byte) (int, error) {
	if s.f == nil && s.mem.Len()+len(p) > spoolMemory {
		f, err := os.CreateTemp("", "smtpd-spool-")
		if err != nil {
			return 0, err
		}
		os.Remove(f.Name()) // open but nameless: gone when closed
		s.f = f
		if _, err := f.Write(s.mem.Bytes()); err != nil {
			return 0, err
		}
		s.mem = bytes.Buffer{}
	}
	if s.f != nil {
		return s.f.Write(p)
	}
	return s.mem.Write(p)
}

// reader returns the message from its start.
func (s *spool) reader() (io.Reader, error) {
	if s.f == nil {
		return bytes.NewReader(s.mem.Bytes()), nil
	}
	if _, err := s.f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	return bufio.NewReaderSize(s.f, 64<<10), nil
}

func (s *spool) Close() error {
	if s.f != nil {
		return s.f.Close()
	}
	return nil
}

// lfWriter converts CRLF line ends to LF, the line end mail readers expect
// in files (Maildir, mbox). A CR not followed by LF is kept; the library
// refuses such messages anyway unless told otherwise.
type lfWriter struct {
	w  io.Writer
	cr bool // the last byte written was a CR, held back
}

func (w *lfWriter) Write(p []byte) (int, error) {
	n := len(p)
	if w.cr && len(p) > 0 {
		w.cr = false
		if p[0] != '\n' {
			if _, err := w.w.Write([]byte{'\r'}); err != nil {
				return 0, err
			}
		}
	}
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\r')
		if i < 0 {
			if _, err := w.w.Write(p); err != nil {
				return 0, err
			}
			break
		}
		if _, err := w.w.Write(p[:i]); err != nil {
			return 0, err
		}
		if i+1 == len(p) {
			w.cr = true
			break
		}
		if p[i+1] != '\n' {
			if _, err := w.w.Write([]byte{'\r'}); err != nil {
				return 0, err
			}
		}
		p = p[i+1:]
	}
	return n, nil
}

// flush writes a CR held back at the end of the input.
func (w *lfWriter) flush() error {
	if w.cr {
		w.cr = false
		_, err := w.w.Write([]byte{'\r'})
		return err
	}
	return nil
}
