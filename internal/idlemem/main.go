//go:build linux

// Command idlemem measures what an idle SMTP session costs a server: it
// opens -n sessions to -addr, reads each greeting, sends EHLO and reads its
// reply, keeps them all open, and prints the growth of the server's
// resident memory (VmRSS in /proc/PID/status, hence linux only) divided by
// the number of sessions. It is a measuring tool for this repository, not
// a package to import, hence its place under internal/.
//
//	ulimit -n 65536
//	go run ./cmd/smtpd -discard -max-conns 0 -addr 127.0.0.1:2525 & pid=$!
//	go run ./internal/idlemem -addr 127.0.0.1:2525 -pid $pid -n 10000
//
// Loopback clients are spared the server's per-IP connection limit, so
// -max-conns 0 (no limit) is the only flag the server needs. Any SMTP
// server can be measured the same way, e.g. go-smtp's sink beside ours.
package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:2525", "the server's `host:port`")
	n := flag.Int("n", 10000, "how many sessions to open")
	pid := flag.Int("pid", 0, "the server's process id, whose VmRSS is measured (required)")
	settle := flag.Duration("settle", 2*time.Second, "wait this long after the last EHLO reply before reading the RSS")
	flag.Parse()
	if *pid <= 0 {
		log.Fatal("idlemem: -pid is required")
	}
	// One descriptor per session, and a few for the program itself.
	if err := raiseNoFile(uint64(*n) + 64); err != nil {
		log.Fatalf("idlemem: %v (the server needs `ulimit -n` raised as well)", err)
	}

	before, err := rssKiB(*pid)
	if err != nil {
		log.Fatal(err)
	}
	conns, err := open(*addr, *n)
	if err != nil {
		log.Fatal(err)
	}
	time.Sleep(*settle)
	after, err := rssKiB(*pid)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("sessions %d, server RSS %d KiB before, %d KiB after: %.1f KiB per idle session after EHLO\n",
		len(conns), before, after, float64(after-before)/float64(len(conns)))
	for _, c := range conns {
		c.Close()
	}
}

// open opens n sessions, each left idle after the reply to its EHLO. A few
// workers open them in parallel, so that 10,000 take seconds, not minutes,
// without a burst larger than the server's listen backlog.
func open(addr string, n int) ([]net.Conn, error) {
	const workers = 32
	conns := make([]net.Conn, n)
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	next := make(chan int)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				c, err := session(addr)
				if err != nil {
					errs <- fmt.Errorf("session %d: %w", i, err)
					return
				}
				conns[i] = c
			}
		}()
	}
	var err error
feed:
	for i := range n {
		select {
		case next <- i:
		case err = <-errs:
			break feed
		}
	}
	close(next)
	wg.Wait()
	if err == nil {
		select {
		case err = <-errs:
		default:
		}
	}
	if err != nil {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
		return nil, err
	}
	return conns, nil
}

// session opens one connection and takes it through the greeting and EHLO.
func session(addr string) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(30 * time.Second))
	// A small reader: the replies are a few lines, and the program holds
	// one per session only while it reads them.
	r := bufio.NewReaderSize(c, 512)
	if err := expect(r, "220"); err == nil {
		if _, err = c.Write([]byte("EHLO idlemem.example\r\n")); err == nil {
			err = expect(r, "250")
		}
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	if r.Buffered() > 0 {
		c.Close()
		return nil, errors.New("more than the EHLO reply came")
	}
	c.SetDeadline(time.Time{})
	return c, nil
}

// expect reads one reply, of one or more lines (RFC 5321 4.2.1), and
// checks its code.
func expect(r *bufio.Reader, code string) error {
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return err
		}
		if len(line) < 4 || line[:3] != code {
			return fmt.Errorf("want %s, got %q", code, line)
		}
		if line[3] == ' ' {
			return nil
		}
	}
}

// rssKiB returns the resident set size of process pid, in KiB.
func rssKiB(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		if v, ok := bytes.CutPrefix(line, []byte("VmRSS:")); ok {
			f := bytes.Fields(v) // "123456 kB"
			if len(f) == 2 {
				return strconv.ParseInt(string(f[0]), 10, 64)
			}
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// raiseNoFile raises the soft limit on open files to at least n, within
// the hard limit.
func raiseNoFile(n uint64) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return err
	}
	if lim.Cur >= n {
		return nil
	}
	if lim.Max < n {
		return fmt.Errorf("open files: need %d, the hard limit is %d", n, lim.Max)
	}
	lim.Cur = n
	return syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
}
