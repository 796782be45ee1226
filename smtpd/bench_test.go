package smtpd

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
)

// BenchmarkTransaction measures complete mail transactions over loopback,
// client included: MAIL, RCPT, DATA with the message, on one connection.
func BenchmarkTransaction(b *testing.B) {
	for _, size := range []int{1 << 10, 100 << 10} {
		b.Run(sizeName(size), func(b *testing.B) {
			addr := startServer(b, &Server{})
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close()
			r := bufio.NewReader(conn)
			w := bufio.NewWriter(conn)
			// Not textproto's ReadResponse: allocations are counted for
			// the whole process, and it would add 4 per transaction
			// (11 to 15) on the client's side.
			expect := func(prefix string) {
				for {
					line, err := r.ReadString('\n')
					if err != nil || !strings.HasPrefix(line, prefix) {
						b.Fatalf("want %s, got %q, %v", prefix, line, err)
					}
					if line[3] == ' ' {
						return
					}
				}
			}
			expect("220")
			w.WriteString("EHLO bench.example\r\n")
			w.Flush()
			expect("250")
			line := strings.Repeat("x", 76) + "\r\n"
			body := "Subject: bench\r\n\r\n" + strings.Repeat(line, size/len(line)) + ".\r\n"
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				// As a PIPELINING client sends it (RFC 2920 3.1).
				w.WriteString("MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n")
				w.Flush()
				expect("250")
				expect("250")
				expect("354")
				w.WriteString(body)
				w.Flush()
				expect("250")
			}
		})
	}
}

func sizeName(n int) string { return fmt.Sprintf("%dKiB", n>>10) }

// BenchmarkRefusedConnection measures a connection beyond MaxConnections,
// client included: dial, read the 421, see the close. The server's part
// should be little more than the accept: no session buffers, context or
// goroutine for a connection it will not serve.
func BenchmarkRefusedConnection(b *testing.B) {
	addr := startServer(b, &Server{MaxConnections: 1})
	held, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer held.Close()
	var buf [512]byte
	if n, err := held.Read(buf[:]); err != nil || !strings.HasPrefix(string(buf[:n]), "220") {
		b.Fatalf("held connection: %q, %v", buf[:n], err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.ReadFull(conn, buf[:4])
		if err != nil || string(buf[:n]) != "421 " {
			b.Fatalf("got %q, %v", buf[:n], err)
		}
		for err == nil { // until the server closes
			_, err = conn.Read(buf[:])
		}
		conn.Close()
	}
}
