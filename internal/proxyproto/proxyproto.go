// Package proxyproto reads the header of the PROXY protocol (HAProxy's
// "The PROXY protocol, Versions 1 & 2", doc/proxy-protocol.txt), by which
// a proxy in front of a server tells it the addresses of the connection
// it relays, in the first bytes of the connection. Only a proxy the server
// trusts may send one (section 2: a receiver must never guess whether a
// header is present), so the caller decides whether to expect it; this
// package only parses it.
package proxyproto

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// ErrNoHeader: the connection does not begin with a PROXY header at
// all. The spec (2.2, version detection) says such a connection must be
// dropped.
var ErrNoHeader = errors.New("connection does not begin with a PROXY protocol header")

// ErrBadHeader is wrapped by every error about a header that began
// like one but breaks the spec. The details never quote more than one field
// of a v1 line, so a client cannot fill logs with its bytes.
var ErrBadHeader = errors.New("invalid PROXY protocol header")

const (
	// 2.1: the longest v1 line, CRLF included, is
	// "PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n".
	proxyV1MaxLine = 107
	proxyV1Prefix  = "PROXY "

	// 2.2: the v2 header is this signature, a version and command byte, a
	// family and transport byte, and the length of what follows (2 bytes,
	// big-endian).
	V2Signature      = "\r\n\r\n\x00\r\nQUIT\n"
	proxyV2HeaderLen = 16
)

// ReadHeader reads a PROXY protocol header (v1 text or v2 binary) that
// must be the very first bytes of the connection, from br, and returns the
// source and destination addresses it carries, as *net.TCPAddr. For v1
// "UNKNOWN" and v2 LOCAL (health checks) it returns nil, nil, nil: the
// connection's own addresses stand; so it does for a v2 PROXY header whose
// family is AF_UNSPEC or AF_UNIX (see readProxyV2). Anything else that is
// not a valid header is an error; the caller closes the connection without
// a reply. The error is ErrNoHeader when the bytes are not a header
// at all, one wrapping ErrBadHeader when they break the spec, io.EOF
// when the connection closed before its first byte, or the read's error.
//
// It consumes nothing: n is the header's length in octets, for the caller
// to discard. It reads from the connection only until the header is complete
// (a client that sent it waits for the greeting), and a client cannot make
// it buffer more than br's buffer.
func ReadHeader(br *bufio.Reader) (src, dst net.Addr, n int, err error) {
	// The first byte tells the versions apart: 'P' of "PROXY", or the CR
	// that starts the v2 signature. Peeking one byte first, rather than
	// the 16 of a v2 header, answers at once a client that sends a short
	// line and waits.
	first, err := br.Peek(1)
	if err != nil {
		return nil, nil, 0, err // io.EOF: closed without sending anything
	}
	switch first[0] {
	case proxyV1Prefix[0]:
		return readProxyV1(br)
	case V2Signature[0]:
		return readProxyV2(br)
	}
	return nil, nil, 0, ErrNoHeader
}

// readProxyV1 reads a human-readable header (spec 2.1):
//
//	PROXY TCP4 192.0.2.1 198.51.100.2 56324 25\r\n
//	PROXY UNKNOWN ...\r\n
func readProxyV1(br *bufio.Reader) (src, dst net.Addr, n int, err error) {
	if _, err := peekPrefix(br, proxyV1Prefix, len(proxyV1Prefix)); err != nil {
		return nil, nil, 0, err
	}
	line, err := peekLine(br, proxyV1MaxLine)
	if err != nil {
		return nil, nil, 0, err
	}
	// 2.1: "The receiver must not tolerate a single CR or LF character to
	// end the line when a complete CRLF sequence is expected."
	if !bytes.HasSuffix(line, []byte("\r\n")) {
		return nil, nil, 0, fmt.Errorf("%w: v1 line ends in a bare LF", ErrBadHeader)
	}
	rest := string(line[len(proxyV1Prefix) : len(line)-2])

	// 2.1: for UNKNOWN "the receiver must ignore anything presented before
	// the CRLF", and use the connection's own addresses.
	if rest == "UNKNOWN" || strings.HasPrefix(rest, "UNKNOWN ") {
		return nil, nil, len(line), nil
	}

	// "exactly one space" between fields: strings.Split leaves an empty
	// field for a doubled space, which then fails to parse.
	f := strings.Split(rest, " ")
	if len(f) != 5 {
		return nil, nil, 0, fmt.Errorf("%w: v1 line has %d fields after PROXY, want 5", ErrBadHeader, len(f))
	}
	var want4 bool
	switch f[0] {
	case "TCP4":
		want4 = true
	case "TCP6":
	default:
		return nil, nil, 0, fmt.Errorf("%w: v1 protocol %q", ErrBadHeader, f[0])
	}
	srcIP, err := parseProxyIP(f[1], want4)
	if err != nil {
		return nil, nil, 0, err
	}
	dstIP, err := parseProxyIP(f[2], want4)
	if err != nil {
		return nil, nil, 0, err
	}
	srcPort, err := parseProxyPort(f[3])
	if err != nil {
		return nil, nil, 0, err
	}
	dstPort, err := parseProxyPort(f[4])
	if err != nil {
		return nil, nil, 0, err
	}
	return tcpAddr(srcIP, srcPort), tcpAddr(dstIP, dstPort), len(line), nil
}

// peekPrefix peeks n bytes of br, which must begin with prefix: if they do
// not, the connection does not begin with a header at all.
func peekPrefix(br *bufio.Reader, prefix string, n int) ([]byte, error) {
	b, err := br.Peek(n)
	m := min(len(b), len(prefix))
	if string(b[:m]) != prefix[:m] {
		return nil, ErrNoHeader
	}
	if err != nil {
		return nil, truncated(err)
	}
	return b, nil
}

// peekLine returns the bytes of br up to and including the first LF,
// without consuming them. It fails when no LF is within limit bytes, so it
// never waits for, nor buffers, more than the longest valid line; and it
// reads from the connection only while what is buffered holds no LF, since
// a client that sent its header waits for the greeting.
func peekLine(br *bufio.Reader, limit int) ([]byte, error) {
	for {
		b, _ := br.Peek(min(br.Buffered(), limit)) // no read: it is buffered
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			return b[:i+1], nil
		}
		if len(b) == limit {
			return nil, fmt.Errorf("%w: no CRLF in the first %d bytes", ErrBadHeader, limit)
		}
		// Wait for at least one more byte.
		if _, err := br.Peek(len(b) + 1); err != nil {
			return nil, truncated(err)
		}
	}
}

// parseProxyIP parses a v1 address. 2.1: the address is in the family the
// protocol names, IPv4 as four decimal numbers without leading zeros (which
// netip enforces), IPv6 in the usual hexadecimal form; a zone is not part
// of either.
func parseProxyIP(s string, want4 bool) (netip.Addr, error) {
	ip, err := netip.ParseAddr(s)
	if err != nil || ip.Zone() != "" || ip.Is4() != want4 {
		return netip.Addr{}, fmt.Errorf("%w: v1 address %q", ErrBadHeader, s)
	}
	return ip, nil
}

// parseProxyPort parses a v1 port. 2.1: a decimal integer in [0..65535];
// "Heading zeroes are not permitted in front of numbers in order to avoid
// any possible confusion with octal numbers."
func parseProxyPort(s string) (uint16, error) {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || len(s) > 1 && s[0] == '0' {
		return 0, fmt.Errorf("%w: v1 port %q", ErrBadHeader, s)
	}
	return uint16(n), nil
}

// v2 commands, families and transports (spec 2.2): the high and low four
// bits of the 13th and 14th bytes. 0x0 is UNSPEC for both families and
// transports.
const (
	proxyV2Version = 0x2
	proxyV2Local   = 0x0
	proxyV2Proxy   = 0x1

	proxyV2Inet   = 0x1
	proxyV2Inet6  = 0x2
	proxyV2Unix   = 0x3
	proxyV2Stream = 0x1
	proxyV2Dgram  = 0x2
)

// readProxyV2 reads a binary header (spec 2.2).
func readProxyV2(br *bufio.Reader) (src, dst net.Addr, n int, err error) {
	hdr, err := peekPrefix(br, V2Signature, proxyV2HeaderLen)
	if err != nil {
		return nil, nil, 0, err
	}
	version, command := hdr[12]>>4, hdr[12]&0xf
	family, transport := hdr[13]>>4, hdr[13]&0xf
	n = proxyV2HeaderLen + int(binary.BigEndian.Uint16(hdr[14:16]))

	// "the receiver must only accept" version 2; other commands are
	// unassigned and "Receivers must drop connections presenting
	// unexpected values here."
	if version != proxyV2Version {
		return nil, nil, 0, fmt.Errorf("%w: v2 version %d", ErrBadHeader, version)
	}
	if command != proxyV2Local && command != proxyV2Proxy {
		return nil, nil, 0, fmt.Errorf("%w: v2 command %d", ErrBadHeader, command)
	}
	// The length may cover TLVs after the addresses (2.2), which we skip
	// unread; the whole header must fit in br's buffer to be peeked. That
	// is far more than any sender uses (the spec keeps headers within one
	// 536-byte TCP segment, section 2).
	if n > br.Size() {
		return nil, nil, 0, fmt.Errorf("%w: v2 header of %d bytes is too long", ErrBadHeader, n)
	}
	hdr, err = br.Peek(n)
	if err != nil {
		// 2.2: "The receiver must also reject incoming connections
		// containing partial protocol headers."
		return nil, nil, 0, truncated(err)
	}
	addrs := hdr[proxyV2HeaderLen:]

	// LOCAL: the proxy's own connection, a health check. The receiver
	// "must use the real connection endpoints and discard the protocol
	// block including the family which is ignored".
	if command == proxyV2Local {
		return nil, nil, n, nil
	}
	if family > proxyV2Unix || transport > proxyV2Dgram {
		return nil, nil, 0, fmt.Errorf("%w: v2 family %d, transport %d", ErrBadHeader, family, transport)
	}
	if transport == proxyV2Dgram {
		// SMTP runs over a stream: a proxy that says it relayed
		// datagrams is misconfigured.
		return nil, nil, 0, fmt.Errorf("%w: v2 transport is a datagram protocol", ErrBadHeader)
	}

	var size int // of the source and destination addresses, each
	switch {
	case family == proxyV2Inet && transport == proxyV2Stream:
		size = 4
	case family == proxyV2Inet6 && transport == proxyV2Stream:
		size = 16
	default:
		// AF_UNSPEC or an unspecified transport: "The receiver should
		// ignore address information" and may use the real endpoints.
		// AF_UNIX falls back to that too, as 2.2 allows a receiver that
		// does not implement a family: its client is a process on the
		// proxy's own host, which the proxy's address names well
		// enough, and a socket path has no place in a net.TCPAddr.
		return nil, nil, n, nil
	}
	if len(addrs) < 2*size+4 {
		return nil, nil, 0, fmt.Errorf("%w: v2 address block of %d bytes is too short", ErrBadHeader, len(addrs))
	}
	srcIP, _ := netip.AddrFromSlice(addrs[:size])
	dstIP, _ := netip.AddrFromSlice(addrs[size : 2*size])
	srcPort := binary.BigEndian.Uint16(addrs[2*size:])
	dstPort := binary.BigEndian.Uint16(addrs[2*size+2:])
	return tcpAddr(srcIP, srcPort), tcpAddr(dstIP, dstPort), n, nil
}

// tcpAddr makes the address the server reports. An IPv4-mapped IPv6
// address (::ffff:192.0.2.1, which a proxy listening on IPv6 reports for an
// IPv4 client) becomes the IPv4 address it is, so that callbacks see one
// form for one client.
func tcpAddr(ip netip.Addr, port uint16) *net.TCPAddr {
	return net.TCPAddrFromAddrPort(netip.AddrPortFrom(ip.Unmap(), port))
}

// truncated turns the end of input inside a header into an error that says
// so; other read errors (a timeout, a reset) are returned as they are.
func truncated(err error) error {
	if err == io.EOF {
		return fmt.Errorf("%w: truncated: %w", ErrBadHeader, io.ErrUnexpectedEOF)
	}
	return err
}
