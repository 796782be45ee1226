package smtpd

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// TestHAProxy puts a real HAProxy in TCP mode in front of the server, as a
// deployment behind a load balancer does, and checks that the server takes
// the client's address from the PROXY header HAProxy sends, in each of its
// formats. The client connects from 127.0.0.2, HAProxy from 127.0.0.1, so
// the test tells the two apart.
func TestHAProxy(t *testing.T) {
	haproxy, err := exec.LookPath("haproxy")
	if err != nil {
		// Debian installs it in /usr/sbin, which a user's PATH may lack.
		haproxy, err = exec.LookPath("/usr/sbin/haproxy")
	}
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("haproxy is not installed; .ci/run must install the Debian package haproxy")
		}
		t.Skip("haproxy is not installed (apt-get install haproxy); skipping the PROXY protocol test against it")
	}
	for _, tt := range []struct {
		name   string
		server string // the options of HAProxy's server line
	}{
		{"v1", "send-proxy"},
		{"v2", "send-proxy-v2"},
		// TLVs after the addresses, which the server skips.
		{"v2 with TLVs", "send-proxy-v2 proxy-v2-options crc32c,unique-id"},
	} {
		t.Run(tt.name, func(t *testing.T) { testHAProxy(t, haproxy, tt.server) })
	}
}

func testHAProxy(t *testing.T, haproxy, serverOptions string) {
	checked := make(chan net.Addr, 1)
	rec := &recorder{}
	srv := &Server{
		Hostname:     "mx.test",
		Handler:      rec,
		ProxyTrusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
		CheckConnection: func(_ context.Context, remote net.Addr) error {
			checked <- remote
			return nil
		},
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	peers := &peerListener{Listener: l}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(peers) }()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})

	feAddr := startHAProxy(t, haproxy, fmt.Sprintf("server smtpd %s %s", l.Addr(), serverOptions))

	// The client, from another loopback address than HAProxy's.
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}, Timeout: 5 * time.Second}
	conn, err := d.Dial("tcp", feAddr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	c := &client{t: t, conn: conn, r: bufio.NewReader(conn)}
	c.expect("220 ")
	c.do("EHLO client.test", "250 ")
	c.message("Subject: via HAProxy\r\n\r\nhi\r\n.\r\n", "250 ")
	c.do("QUIT", "221")

	want := conn.LocalAddr().String() // 127.0.0.2 and the client's port
	if got := (<-checked).String(); got != want {
		t.Errorf("CheckConnection got %s, want the client's %s", got, want)
	}
	msgs := rec.delivered()
	if len(msgs) != 1 {
		t.Fatalf("delivered %d messages, want 1", len(msgs))
	}
	if got := msgs[0].env.RemoteAddr.String(); got != want {
		t.Errorf("Envelope.RemoteAddr = %s, want the client's %s", got, want)
	}
	if got := peers.first(); got == nil || got.(*net.TCPAddr).IP.String() != "127.0.0.1" {
		t.Errorf("the server's TCP peer was %v, want HAProxy at 127.0.0.1", got)
	}
}

// startHAProxy runs HAProxy in TCP mode with the given server line, in the
// foreground (-db), until the test ends, and returns its frontend address.
//
// The frontend's socket is made here and handed to HAProxy as file
// descriptor 3 ("bind fd@3"): it listens before HAProxy starts, so the
// client can connect at once (the kernel queues the connection until
// HAProxy accepts it), with neither a race for a free port nor polling for
// HAProxy to be ready, which it does not announce.
func startHAProxy(t *testing.T, haproxy, serverLine string) string {
	t.Helper()
	fe, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer fe.Close()
	feFile, err := fe.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	defer feFile.Close()

	config := `global
	maxconn 100

defaults
	mode tcp
	timeout connect 5s
	timeout client 30s
	timeout server 30s
	unique-id-format %{+X}o%ci:%cp

frontend smtp
	bind fd@3
	default_backend smtpd

backend smtpd
	` + serverLine + "\n"
	cfg := filepath.Join(t.TempDir(), "haproxy.cfg")
	if err := os.WriteFile(cfg, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}

	var output bytes.Buffer // read only after Wait, when HAProxy is gone
	cmd := exec.Command(haproxy, "-db", "-f", cfg)
	cmd.ExtraFiles = []*os.File{feFile} // fd 3 in HAProxy
	cmd.Stdout, cmd.Stderr = &output, &output
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("haproxy.cfg:\n%s\nhaproxy's output:\n%s", config, output.String())
		}
	})
	return fe.Addr().String()
}

// peerListener records the address of the first connection it accepts: the
// TCP peer, before any PROXY header.
type peerListener struct {
	net.Listener
	mu   sync.Mutex
	peer net.Addr
}

func (l *peerListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.mu.Lock()
		if l.peer == nil {
			l.peer = c.RemoteAddr()
		}
		l.mu.Unlock()
	}
	return c, err
}

func (l *peerListener) first() net.Addr {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.peer
}
