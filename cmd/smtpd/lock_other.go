//go:build !(darwin || dragonfly || freebsd || illumos || linux || netbsd || openbsd || windows)

package main

import (
	"errors"
	"os"
	"runtime"
)

// errNoLock is what -mbox says on systems without flock (Solaris, AIX):
// appending without the lock mail readers take would corrupt the mbox.
var errNoLock = errors.New("not supported on " + runtime.GOOS + ": no flock to lock the mbox with")

const mboxFlags = os.O_RDWR | os.O_APPEND | os.O_CREATE

func tryLock(f *os.File) (bool, error) { return false, errNoLock }

func unlock(f *os.File) error { return errNoLock }
