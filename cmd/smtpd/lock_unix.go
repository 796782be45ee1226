//go:build darwin || dragonfly || freebsd || illumos || linux || netbsd || openbsd

package main

import (
	"errors"
	"os"
	"syscall"
)

// mboxFlags opens an mbox: O_APPEND writes at its end whatever another
// writer did.
const mboxFlags = os.O_RDWR | os.O_APPEND | os.O_CREATE

// tryLock takes an exclusive flock(2) on f, the lock mail readers such as
// mutt and Python's mailbox take on an mbox, without waiting: it reports
// false when another process holds it.
func tryLock(f *os.File) (bool, error) {
	err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) || errors.Is(err, syscall.EINTR) {
		return false, nil
	}
	return err == nil, err
}

// unlock releases tryLock's lock.
func unlock(f *os.File) error {
	return syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
}
