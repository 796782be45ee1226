package proxyproto

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
)

// v2 builds a binary PROXY header (spec 2.2): signature, version and
// command, family and transport, the length of body, and body.
func v2(verCmd, famTrans byte, body ...string) string {
	b := strings.Join(body, "")
	return v2Len(verCmd, famTrans, len(b)) + b
}

// v2Len is the 16 fixed bytes of a v2 header declaring n more bytes.
func v2Len(verCmd, famTrans byte, n int) string {
	var l [2]byte
	binary.BigEndian.PutUint16(l[:], uint16(n))
	return V2Signature + string([]byte{verCmd, famTrans}) + string(l[:])
}

// TestReadProxyHeader checks each header above followed by a command:
// the addresses returned, and that the length returned is exactly the
// header's (on success), and that nothing was consumed.
func TestReadProxyHeader(t *testing.T) {
	for _, tt := range proxyTests {
		t.Run(tt.name, func(t *testing.T) {
			in := tt.in + after
			if tt.err == io.ErrUnexpectedEOF {
				in = tt.in // truncated: nothing follows
			}
			br := bufio.NewReaderSize(strings.NewReader(in), 4096)
			src, dst, n, err := ReadHeader(br)
			br.Discard(n)
			rest, _ := io.ReadAll(br)

			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("got error %v, want %v", err, tt.err)
				}
				if src != nil || dst != nil {
					t.Errorf("got addresses %v, %v with the error", src, dst)
				}
				if string(rest) != in {
					t.Errorf("consumed %d bytes on error, want 0", len(in)-len(rest))
				}
				return
			}
			if err != nil {
				t.Fatalf("got error %v", err)
			}
			if got := addrString(src); got != tt.src {
				t.Errorf("src = %s, want %s", got, tt.src)
			}
			if got := addrString(dst); got != tt.dst {
				t.Errorf("dst = %s, want %s", got, tt.dst)
			}
			if string(rest) != after {
				t.Errorf("left %q unread, want %q", rest, after)
			}
		})
	}
}

// addrString is a's text, "" for nil; it fails on an address that is not
// a *net.TCPAddr, which is what the server reports.
func addrString(a net.Addr) string {
	if a == nil {
		return ""
	}
	if _, ok := a.(*net.TCPAddr); !ok {
		return fmt.Sprintf("%T", a)
	}
	return a.String()
}

// TestReadProxyHeaderDoesNotWait: an SMTP client sends the header and then
// waits for the greeting, so the header must be read without asking the
// connection for more bytes, however it arrives; and a line without CRLF
// must fail at 107 bytes, not wait for more.
func TestReadProxyHeaderDoesNotWait(t *testing.T) {
	for _, tt := range []struct {
		name string
		send string
		err  error
	}{
		{"v1", "PROXY TCP4 192.0.2.1 198.51.100.2 56324 25\r\n", nil},
		{"v1 UNKNOWN", "PROXY UNKNOWN\r\n", nil},
		{"v1 no CRLF", "PROXY UNKNOWN " + strings.Repeat("x", proxyV1MaxLine-len("PROXY UNKNOWN ")), ErrBadHeader},
		{"v2", v2(0x21, 0x11, inet4), nil},
		{"v2 LOCAL", v2(0x20, 0x00), nil},
		{"not a header", "QUIT\r\n", ErrNoHeader},
	} {
		for _, split := range []int{0, 1, 7} { // 0: all at once; n: n bytes per read
			t.Run(fmt.Sprintf("%s/%d", tt.name, split), func(t *testing.T) {
				r := &pieceReader{}
				for s := tt.send; s != ""; {
					n := len(s)
					if split > 0 {
						n = min(n, split)
					}
					r.chunks = append(r.chunks, s[:n])
					s = s[n:]
				}
				_, _, _, err := ReadHeader(bufio.NewReaderSize(r, 4096))
				if !errors.Is(err, tt.err) {
					t.Errorf("got error %v, want %v", err, tt.err)
				}
				if r.overread {
					t.Errorf("read past the %d bytes sent", len(tt.send))
				}
			})
		}
	}
}

// pieceReader is a client that sends chunks, one per Read, and then waits:
// a Read past them would block, and is recorded.
type pieceReader struct {
	chunks   []string
	overread bool
}

func (r *pieceReader) Read(p []byte) (int, error) {
	if len(r.chunks) == 0 {
		r.overread = true
		return 0, errors.New("read would block")
	}
	n := copy(p, r.chunks[0])
	if r.chunks[0] = r.chunks[0][n:]; r.chunks[0] == "" {
		r.chunks = r.chunks[1:]
	}
	return n, nil
}

// TestReadProxyHeaderErrorIsShort: an error quotes at most one field of
// the client's line.
func TestReadProxyHeaderErrorIsShort(t *testing.T) {
	for _, in := range []string{
		"PROXY TCP4 " + strings.Repeat("9", 90) + " 1.2.3.4 1 2\r\n",
		"PROXY " + strings.Repeat("A", 100) + "\r\n",
		"PROXY UNKNOWN" + strings.Repeat(" ", 4000),
		v2Len(0x21, 0xff, 4000) + strings.Repeat("\xff", 4000),
	} {
		_, _, _, err := ReadHeader(bufio.NewReaderSize(strings.NewReader(in), 4096))
		if err == nil || len(err.Error()) > 200 {
			t.Errorf("error for a %d-byte header: %v", len(in), err)
		}
	}
}

// FuzzProxyHeader: ReadHeader never panics; it consumes nothing, and
// gives the length of exactly the header on success (the line through its CRLF, or
// 16 bytes and the declared length); both addresses or neither; and a TCP4
// line it accepts is the one the addresses format to, since the spec
// allows one spelling of each.
func FuzzProxyHeader(f *testing.F) {
	for _, tt := range proxyTests {
		f.Add([]byte(tt.in + after))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		br := bufio.NewReaderSize(bytes.NewReader(in), 4096)
		src, dst, n, err := ReadHeader(br)
		br.Discard(n)
		rest, _ := io.ReadAll(br)
		consumed := len(in) - len(rest)
		if err != nil {
			if consumed != 0 || src != nil || dst != nil {
				t.Fatalf("error %v, yet consumed %d bytes and returned %v, %v", err, consumed, src, dst)
			}
			return
		}
		if (src == nil) != (dst == nil) {
			t.Fatalf("one address only: %v, %v", src, dst)
		}

		var want int // the header's length
		switch {
		case bytes.HasPrefix(in, []byte(proxyV1Prefix)):
			want = bytes.IndexByte(in, '\n') + 1
			if want > proxyV1MaxLine || in[want-2] != '\r' {
				t.Fatalf("accepted v1 line %q", in[:want])
			}
			if bytes.HasPrefix(in, []byte("PROXY TCP4 ")) {
				s, d := src.(*net.TCPAddr), dst.(*net.TCPAddr)
				line := fmt.Sprintf("PROXY TCP4 %s %s %d %d\r\n", s.IP, d.IP, s.Port, d.Port)
				if line != string(in[:want]) {
					t.Fatalf("accepted %q, which formats as %q", in[:want], line)
				}
			}
		case bytes.HasPrefix(in, []byte(V2Signature)) && len(in) >= proxyV2HeaderLen:
			want = proxyV2HeaderLen + int(binary.BigEndian.Uint16(in[14:16]))
		default:
			t.Fatalf("accepted %q, which is not a header", in)
		}
		if consumed != want {
			t.Fatalf("consumed %d bytes, want the header's %d", consumed, want)
		}
		for _, a := range []net.Addr{src, dst} {
			if a == nil {
				continue
			}
			if _, ok := a.(*net.TCPAddr); !ok {
				t.Fatalf("address %v is a %T, want *net.TCPAddr", a, a)
			}
		}
	})
}

// after is what the client sends once the header is through; it must be
// left unread for the session.
const after = "EHLO x\r\n"

var proxyTests = []struct {
	name     string
	in       string // the header; after follows it
	src, dst string // "" for nil
	err      error  // errors.Is target; nil for success
}{
	// Version 1 (spec 2.1).
	{"v1 TCP4", "PROXY TCP4 192.0.2.1 198.51.100.2 56324 25\r\n", "192.0.2.1:56324", "198.51.100.2:25", nil},
	{"v1 TCP6", "PROXY TCP6 2001:db8::1 2001:DB8::2 65535 0\r\n", "[2001:db8::1]:65535", "[2001:db8::2]:0", nil},
	{"v1 TCP6 v4-mapped", "PROXY TCP6 ::ffff:192.0.2.1 ::ffff:198.51.100.2 1 2\r\n", "192.0.2.1:1", "198.51.100.2:2", nil},
	{"v1 TCP6 longest", "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n",
		"[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535", "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535", nil},
	{"v1 UNKNOWN", "PROXY UNKNOWN\r\n", "", "", nil},
	{"v1 UNKNOWN ignores the rest", "PROXY UNKNOWN whatever \x01 here\r\n", "", "", nil},
	{"v1 UNKNOWN longest", "PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n", "", "", nil},

	{"v1 bad protocol", "PROXY UDP4 192.0.2.1 198.51.100.2 56324 25\r\n", "", "", ErrBadHeader},
	{"v1 lower-case protocol", "PROXY tcp4 192.0.2.1 198.51.100.2 56324 25\r\n", "", "", ErrBadHeader},
	{"v1 UNKNOWN glued", "PROXY UNKNOWNX\r\n", "", "", ErrBadHeader},
	{"v1 bad IP", "PROXY TCP4 192.0.2.256 198.51.100.2 56324 25\r\n", "", "", ErrBadHeader},
	{"v1 IPv4 leading zero", "PROXY TCP4 192.0.2.01 198.51.100.2 56324 25\r\n", "", "", ErrBadHeader},
	{"v1 IPv6 in TCP4", "PROXY TCP4 2001:db8::1 198.51.100.2 56324 25\r\n", "", "", ErrBadHeader},
	{"v1 v4-mapped in TCP4", "PROXY TCP4 ::ffff:192.0.2.1 198.51.100.2 56324 25\r\n", "", "", ErrBadHeader},
	{"v1 IPv4 in TCP6", "PROXY TCP6 2001:db8::1 198.51.100.2 56324 25\r\n", "", "", ErrBadHeader},
	{"v1 IPv6 zone", "PROXY TCP6 fe80::1%eth0 2001:db8::2 56324 25\r\n", "", "", ErrBadHeader},
	{"v1 port 65536", "PROXY TCP4 192.0.2.1 198.51.100.2 65536 25\r\n", "", "", ErrBadHeader},
	{"v1 port leading zero", "PROXY TCP4 192.0.2.1 198.51.100.2 56324 025\r\n", "", "", ErrBadHeader},
	{"v1 port 00", "PROXY TCP4 192.0.2.1 198.51.100.2 00 25\r\n", "", "", ErrBadHeader},
	{"v1 port sign", "PROXY TCP4 192.0.2.1 198.51.100.2 +56324 25\r\n", "", "", ErrBadHeader},
	{"v1 port hex", "PROXY TCP4 192.0.2.1 198.51.100.2 0x19 25\r\n", "", "", ErrBadHeader},
	{"v1 double space", "PROXY TCP4  192.0.2.1 198.51.100.2 56324 25\r\n", "", "", ErrBadHeader},
	{"v1 trailing space", "PROXY TCP4 192.0.2.1 198.51.100.2 56324 25 \r\n", "", "", ErrBadHeader},
	{"v1 tab", "PROXY TCP4\t192.0.2.1 198.51.100.2 56324 25\r\n", "", "", ErrBadHeader},
	{"v1 missing field", "PROXY TCP4 192.0.2.1 198.51.100.2 56324\r\n", "", "", ErrBadHeader},
	{"v1 bare LF", "PROXY TCP4 192.0.2.1 198.51.100.2 56324 25\n", "", "", ErrBadHeader},
	{"v1 bare CR", "PROXY TCP4 192.0.2.1 198.51.100.2 56324 25\rEHLO y\r\n", "", "", ErrBadHeader},
	{"v1 missing CRLF", "PROXY TCP4 192.0.2.1 198.51.100.2 56324 25", "", "", io.ErrUnexpectedEOF},
	{"v1 too long", "PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 655350\r\n", "", "", ErrBadHeader},
	{"v1 PROXY without space", "PROXY\r\n", "", "", ErrNoHeader},
	{"v1 wrong word", "PROXI TCP4 192.0.2.1 198.51.100.2 56324 25\r\n", "", "", ErrNoHeader},

	// Version 2 (spec 2.2).
	{"v2 TCP4", v2(0x21, 0x11, inet4), "192.0.2.1:56324", "198.51.100.2:25", nil},
	{"v2 TCP6", v2(0x21, 0x21, inet6), "[2001:db8::1]:56324", "[2001:db8::2]:25", nil},
	{"v2 TCP6 v4-mapped", v2(0x21, 0x21, inet6Mapped), "192.0.2.1:56324", "198.51.100.2:25", nil},
	{"v2 TLVs skipped", v2(0x21, 0x11, inet4, "\x04\x00\x03abc", "\x02\x00\x0bmx.test.org", "\x03\x00\x04\x00\x00\x00\x00"),
		"192.0.2.1:56324", "198.51.100.2:25", nil},
	{"v2 longest", v2(0x21, 0x11, inet4, "\xe0\x0f\xe1", strings.Repeat("x", 4096-proxyV2HeaderLen-len(inet4)-3)),
		"192.0.2.1:56324", "198.51.100.2:25", nil},
	{"v2 LOCAL", v2(0x20, 0x00), "", "", nil},
	{"v2 LOCAL with addresses", v2(0x20, 0x11, inet4), "", "", nil},
	{"v2 LOCAL ignores the family", v2(0x20, 0xff, "abc"), "", "", nil},
	{"v2 UNSPEC", v2(0x21, 0x00), "", "", nil},
	{"v2 UNSPEC transport", v2(0x21, 0x10, inet4), "", "", nil},
	{"v2 UNIX", v2(0x21, 0x31, strings.Repeat("\x00", 216)), "", "", nil},

	{"v2 version 1", v2(0x11, 0x11, inet4), "", "", ErrBadHeader},
	{"v2 version 3", v2(0x31, 0x11, inet4), "", "", ErrBadHeader},
	{"v2 command 2", v2(0x22, 0x11, inet4), "", "", ErrBadHeader},
	{"v2 family 4", v2(0x21, 0x41, inet4), "", "", ErrBadHeader},
	{"v2 transport 3", v2(0x21, 0x13, inet4), "", "", ErrBadHeader},
	{"v2 UDP", v2(0x21, 0x12, inet4), "", "", ErrBadHeader},
	{"v2 TCP4 short", v2(0x21, 0x11, inet4[:11]), "", "", ErrBadHeader},
	{"v2 TCP6 short", v2(0x21, 0x21, inet4), "", "", ErrBadHeader},
	{"v2 length too large", v2Len(0x21, 0x11, 4096-proxyV2HeaderLen+1) + inet4, "", "", ErrBadHeader},
	{"v2 length 65535", v2Len(0x21, 0x11, 65535) + inet4, "", "", ErrBadHeader},
	{"v2 truncated addresses", v2Len(0x21, 0x11, 12) + inet4[:5], "", "", io.ErrUnexpectedEOF},
	{"v2 truncated fixed part", V2Signature + "\x21", "", "", io.ErrUnexpectedEOF},
	{"v2 truncated signature", V2Signature[:5], "", "", io.ErrUnexpectedEOF},
	{"v2 wrong signature", "\r\n\r\n\x00\r\nQUIT\r" + "\x21\x11\x00\x0c" + inet4, "", "", ErrNoHeader},

	// Not a header at all.
	{"SMTP command", "", "", "", ErrNoHeader}, // after alone: EHLO x
	{"blank line", "\r\n", "", "", ErrNoHeader},
	{"HTTP", "GET / HTTP/1.0\r\n", "", "", ErrNoHeader},
	{"TLS ClientHello", "\x16\x03\x01\x00\xa5\x01\x00\x00", "", "", ErrNoHeader},
}

// Address blocks for v2 headers: 192.0.2.1:56324 to 198.51.100.2:25, and
// 2001:db8::1:56324 to 2001:db8::2:25.
const (
	inet4 = "\xc0\x00\x02\x01" + "\xc6\x33\x64\x02" + "\xdc\x04" + "\x00\x19"
	inet6 = "\x20\x01\x0d\xb8" + "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01" +
		"\x20\x01\x0d\xb8" + "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02" +
		"\xdc\x04" + "\x00\x19"
	// ::ffff:192.0.2.1 and ::ffff:198.51.100.2, as a proxy listening on
	// IPv6 reports IPv4 clients.
	inet6Mapped = "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\xff\xff\xc0\x00\x02\x01" +
		"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\xff\xff\xc6\x33\x64\x02" +
		"\xdc\x04" + "\x00\x19"
)
