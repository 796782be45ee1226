package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"smtpd/internal/transcript"
)

// recordMain runs the recording proxy until it is killed.
func recordMain(listen, upstream, out string) error {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	l, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "smtpconform: recording %s -> %s into %s\n", l.Addr(), upstream, out)
	p := &proxy{upstream: upstream, out: out, logf: func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "smtpconform: "+format+"\n", args...)
	}}
	return p.serve(l)
}

// proxy relays SMTP sessions to upstream and writes each as a transcript.
type proxy struct {
	upstream string
	out      string
	logf     func(format string, args ...any)
	n        atomic.Int64
}

func (p *proxy) serve(l net.Listener) error {
	for {
		c, err := l.Accept()
		if err != nil {
			return err
		}
		go p.session(c)
	}
}

// session relays one connection. Each read from either side becomes a
// Chunk, in the order the proxy saw them; the client's bytes are kept
// exactly, which is what the transcript replays.
func (p *proxy) session(client net.Conn) {
	defer client.Close()
	server, err := net.DialTimeout("tcp", p.upstream, 10*time.Second)
	if err != nil {
		p.logf("dial %s: %v", p.upstream, err)
		return
	}
	defer server.Close()

	var mu sync.Mutex
	var chunks []transcript.Chunk
	relay := func(dst, src net.Conn, fromClient bool) {
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				mu.Lock()
				chunks = append(chunks, transcript.Chunk{FromClient: fromClient, Data: append([]byte(nil), buf[:n]...)})
				mu.Unlock()
				if _, werr := dst.Write(buf[:n]); werr != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
		// Pass the end on: a half-close when the peer allows it.
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		} else {
			dst.Close()
		}
	}
	done := make(chan struct{})
	var clientFirst atomic.Bool // the client closed before the server did
	var serverDone atomic.Bool
	go func() {
		relay(server, client, true)
		clientFirst.Store(!serverDone.Load())
		close(done)
	}()
	relay(client, server, false)
	serverDone.Store(true)
	// The server has closed; the client's side ends now too.
	client.Close()
	<-done

	n := p.n.Add(1)
	name := fmt.Sprintf("recorded_%s_%d.txt", time.Now().UTC().Format("20060102T150405"), n)
	t := transcript.FromRecording(name, chunks, transcript.RecordOptions{})
	t.Comment = fmt.Sprintf("A session of the client at %s recorded through smtpconform -record on %s; replace this line with what it checks.",
		client.RemoteAddr(), time.Now().UTC().Format("2006-01-02"))
	t.Ref = "recorded session; name the RFC section it exercises"
	if clientFirst.Load() {
		t.Steps = append(t.Steps, transcript.Step{Kind: transcript.Close})
	}
	t.Steps = append(t.Steps, transcript.Step{Kind: transcript.Closed, Duration: 2 * time.Second})
	if err := writeFile(filepath.Join(p.out, name), t); err != nil {
		p.logf("%v", err)
		return
	}
	p.logf("wrote %s", filepath.Join(p.out, name))
}

func writeFile(path string, t *transcript.Transcript) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := transcript.Write(f, t); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
