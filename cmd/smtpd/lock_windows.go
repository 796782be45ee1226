package main

import (
	"os"
	"syscall"
	"unsafe"
)

// Windows has no flock; LockFileEx is its nearest equivalent, and what Go's
// own cmd/go uses (cmd/go/internal/lockedfile). Unlike flock the lock is
// mandatory: other processes can neither read nor write the file while it
// is held. The standard library's syscall package does not wrap it.
var (
	kernel32         = syscall.NewLazyDLL("kernel32.dll")
	procLockFileEx   = kernel32.NewProc("LockFileEx")
	procUnlockFileEx = kernel32.NewProc("UnlockFileEx")
)

const (
	lockfileFailImmediately = 0x1
	lockfileExclusiveLock   = 0x2
	// errorLockViolation is ERROR_LOCK_VIOLATION: another holds the lock.
	errorLockViolation syscall.Errno = 33
	// allBytes locks the whole file, however long it grows.
	allBytes = ^uint32(0)
)

// mboxFlags opens an mbox, without O_APPEND: on Windows it takes away the
// right to truncate (FILE_WRITE_DATA), which cutting back a failed append
// needs. The lock is mandatory, so the end found under it stays the end.
const mboxFlags = os.O_RDWR | os.O_CREATE

// tryLock takes an exclusive lock on all of f without waiting: it reports
// false when another process holds it.
func tryLock(f *os.File) (bool, error) {
	ol := new(syscall.Overlapped)
	r, _, err := procLockFileEx.Call(f.Fd(), lockfileExclusiveLock|lockfileFailImmediately, 0,
		uintptr(allBytes), uintptr(allBytes), uintptr(unsafe.Pointer(ol)))
	switch {
	case r != 0:
		return true, nil
	case err == errorLockViolation || err == syscall.ERROR_IO_PENDING:
		return false, nil
	}
	return false, err
}

// unlock releases tryLock's lock.
func unlock(f *os.File) error {
	ol := new(syscall.Overlapped)
	r, _, err := procUnlockFileEx.Call(f.Fd(), 0, uintptr(allBytes), uintptr(allBytes), uintptr(unsafe.Pointer(ol)))
	if r == 0 {
		return err
	}
	return nil
}
