package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
)

// The library logs the verb of each command at Debug level, but not the
// command's argument nor the replies; -v promises both. A tap watches a
// session's bytes and logs them as lines: "client" lines and "server"
// lines, with the message content left out (its size is logged) and AUTH
// secrets masked. -record (record.go) writes each session to a file, in
// the conformance suite's format, from the same place.
//
// The tap is the server's WrapConn. The library calls it at accept, on the
// raw connection, and again over the TLS layer after a handshake: the tap
// below TLS then stops reading (the bytes are encrypted) and the one above
// goes on in the clear, so -v shows the whole session, STARTTLS or
// implicit TLS alike.

// newTap returns the WrapConn function that taps every session into log.
// lmtp tells it that the end of a message gets one reply per recipient
// (RFC 2033 4.2).
func newTap(log *slog.Logger, lmtp bool) func(net.Conn) net.Conn {
	return func(c net.Conn) net.Conn {
		if tc, ok := c.(*tls.Conn); ok {
			if below, ok := tc.NetConn().(*tapConn); ok {
				return below.overTLS(tc)
			}
		}
		return &tapConn{Conn: c, log: log.With("remote", c.RemoteAddr().String()), lmtp: lmtp}
	}
}

// tapMode is what the client's bytes are, as far as the tap can tell.
type tapMode int

const (
	tapStart   tapMode = iota // before the greeting: a PROXY header, a TLS handshake, or commands
	tapCommand                // command lines
	tapHold                   // after DATA or STARTTLS: unknown until the reply
	tapData                   // message content, up to CRLF "." CRLF
	tapChunk                  // a BDAT chunk (RFC 3030): chunkLeft octets of content
	tapAuth                   // AUTH exchange: every client line is a secret
	tapOpaque                 // TLS: nothing more to read
)

// maxTapLine bounds a logged line; the library refuses longer commands.
const maxTapLine = 1024

// tapConn logs what passes through a connection.
type tapConn struct {
	net.Conn
	log  *slog.Logger
	lmtp bool

	// mu: the session writes and reads from its goroutine, but Shutdown
	// writes its 421 from another.
	mu   sync.Mutex
	mode tapMode
	// pending are the verbs of the commands sent and not yet answered,
	// oldest first: with PIPELINING (RFC 2920) a reply answers the oldest
	// command, and DATA's 354 may come after replies to MAIL and RCPT.
	// "." stands for the message content, answered after its end.
	pending   []string
	rcpts     int    // recipients accepted: LMTP's replies to the content
	client    []byte // client bytes not logged yet
	skipping  bool   // the rest of an overlong line is being dropped
	server    []byte // a partial reply line
	dataEnd   []byte // the last bytes of content, to find CRLF "." CRLF across reads
	dataSize  int64  // octets of content so far: 32 bits may not hold them
	chunkLeft int64
}

// overTLS returns the tap for the session's TLS layer tc, over c. The
// session now goes on above c: c has seen its last readable byte.
func (c *tapConn) overTLS(tc *tls.Conn) *tapConn {
	c.mu.Lock()
	c.mode, c.client = tapOpaque, nil
	c.mu.Unlock()
	st := tc.ConnectionState()
	c.log.Debug("TLS started", "version", tls.VersionName(st.Version), "cipher", tls.CipherSuiteName(st.CipherSuite))
	// After STARTTLS the session starts over (RFC 3207 4.2); with
	// implicit TLS it starts here. Either way the greeting or the client's
	// EHLO comes next.
	return &tapConn{Conn: tc, log: c.log, lmtp: c.lmtp, mode: tapCommand}
}

func (c *tapConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.mu.Lock()
		c.fromClient(p[:n])
		c.mu.Unlock()
	}
	return n, err
}

func (c *tapConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.fromServer(p)
	c.mu.Unlock()
	return c.Conn.Write(p)
}

// fromClient takes in b and logs what it can of the client's bytes.
func (c *tapConn) fromClient(b []byte) {
	c.client = append(c.client, b...)
	for {
		var more bool
		switch c.mode {
		case tapStart:
			more = c.start()
		case tapCommand, tapAuth:
			var line []byte
			if line, more = c.nextLine(); more {
				c.command(line)
			}
		case tapData:
			more = c.content()
		case tapChunk:
			more = c.chunk()
		case tapOpaque:
			c.client = nil
		}
		// tapHold keeps the bytes until the reply says what they are.
		if !more {
			return
		}
	}
}

// proxyV2 is the signature a PROXY protocol version 2 header starts with.
const proxyV2 = "\r\n\r\n\x00\r\nQUIT\n"

// start looks at the bytes a client sends before the greeting: a PROXY
// header (from a proxy in -proxy-trusted) is logged as such rather than as
// a command, and a TLS handshake record (implicit TLS, RFC 8446 5.1: type
// 22) is left to the tap above TLS. An SMTP client sends nothing else
// before the greeting. It reports whether it made progress.
func (c *tapConn) start() bool {
	b := c.client
	switch {
	case len(b) == 0:
		return false
	case b[0] == 0x16:
		c.mode, c.client = tapOpaque, nil
	case isPrefix(b, proxyV2):
		// The signature, version and command, family, then the length
		// of the addresses (the spec's section 2.2).
		if len(b) < 16 {
			return false
		}
		n := 16 + (int(b[14])<<8 | int(b[15]))
		if len(b) < n {
			return false
		}
		c.logLine("client", []byte("[PROXY protocol v2 header]"), "")
		c.client = b[n:]
	case isPrefix(b, "PROXY "):
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			if len(b) <= 107 { // a v1 header's longest (section 2.1)
				return false
			}
			c.mode = tapCommand
			return true
		}
		c.logLine("client", bytes.TrimRight(b[:i+1], "\r\n"), "")
		c.client = b[i+1:]
	default:
		c.mode = tapCommand
	}
	return true
}

// isPrefix reports whether b begins with s, or is the beginning of s.
func isPrefix(b []byte, s string) bool {
	n := min(len(b), len(s))
	return string(b[:n]) == s[:n]
}

// nextLine returns the next complete client line without its line end, or
// false when there is none yet. An overlong line is logged cut short, and
// its rest dropped as it comes.
func (c *tapConn) nextLine() ([]byte, bool) {
	for {
		i := bytes.IndexByte(c.client, '\n')
		if i < 0 {
			if len(c.client) > maxTapLine && !c.skipping {
				c.command(c.client[:maxTapLine+1]) // logLine cuts it
				c.skipping = true
			}
			if c.skipping {
				c.client = c.client[:0]
			}
			return nil, false
		}
		line := c.client[:i+1]
		c.client = c.client[i+1:]
		if c.skipping {
			c.skipping = false
			continue
		}
		return bytes.TrimRight(line, "\r\n"), true
	}
}

// command logs one client line and sees what it does to the mode.
func (c *tapConn) command(line []byte) {
	if c.mode == tapAuth {
		c.logLine("client", []byte("***"), "")
		return
	}
	verb, arg, _ := strings.Cut(string(line), " ")
	verb = strings.ToUpper(verb)
	switch verb {
	case "AUTH":
		// "AUTH PLAIN <initial response>": the mechanism is no secret,
		// the response is.
		mech, resp, _ := strings.Cut(arg, " ")
		if resp != "" {
			mech += " ***"
		}
		c.logLine("client", []byte(strings.TrimSpace("AUTH "+mech)), "")
		c.mode = tapAuth
		c.pending = append(c.pending, verb)
		return
	case "DATA", "STARTTLS":
		// What follows is content or TLS if the reply says so: hold it
		// until then.
		c.mode = tapHold
	case "BDAT":
		// The chunk follows the line at once, whatever the reply
		// (RFC 3030 2); a size the library cannot read closes the
		// connection, so there is no chunk to follow.
		size, last, _ := strings.Cut(arg, " ")
		if n, err := strconv.ParseInt(size, 10, 64); err == nil && n >= 0 {
			c.mode, c.chunkLeft = tapChunk, n
		}
		if strings.EqualFold(last, "LAST") {
			verb = "BDAT LAST"
		}
	}
	c.pending = append(c.pending, verb)
	c.logLine("client", line, "")
}

// content follows the message content, to log its size and find its end.
func (c *tapConn) content() bool {
	buf := append(c.dataEnd, c.client...)
	if i := bytes.Index(buf, []byte("\r\n.\r\n")); i >= 0 {
		// Octets as sent, dot-stuffing included, up to the end mark.
		c.dataSize += int64(i + 2 - len(c.dataEnd))
		c.log.Debug("client", "content", strconv.FormatInt(c.dataSize, 10)+" octets", "line", ".")
		c.client = append([]byte(nil), buf[i+5:]...)
		c.mode, c.dataEnd, c.dataSize = tapCommand, nil, 0
		return true
	}
	c.dataSize += int64(len(c.client))
	// Keep the last 4 bytes: the end mark may span reads.
	c.dataEnd = append([]byte(nil), buf[max(0, len(buf)-4):]...)
	c.client = c.client[:0]
	return false
}

// chunk follows a BDAT chunk, to log its size.
func (c *tapConn) chunk() bool {
	n := min(c.chunkLeft, int64(len(c.client)))
	c.chunkLeft -= n
	c.dataSize += n
	c.client = c.client[n:]
	if c.chunkLeft > 0 {
		return false
	}
	c.log.Debug("client", "content", strconv.FormatInt(c.dataSize, 10)+" octets")
	c.mode, c.dataSize = tapCommand, 0
	return true
}

func (c *tapConn) fromServer(b []byte) {
	if c.mode == tapOpaque {
		return
	}
	if c.mode == tapStart {
		// The greeting: whatever the client sends now is commands.
		c.mode = tapCommand
		defer c.fromClient(nil)
	}
	c.server = append(c.server, b...)
	for {
		i := bytes.IndexByte(c.server, '\n')
		if i < 0 {
			return
		}
		line := bytes.TrimRight(c.server[:i+1], "\r\n")
		c.server = c.server[i+1:]
		c.logLine("server", line, "")
		if len(line) >= 4 && line[3] == '-' {
			continue // more lines of the same reply
		}
		c.reply(string(line[:min(3, len(line))]))
	}
}

// reply moves the mode on after the last line of a reply with code: the
// reply answers the oldest pending command.
func (c *tapConn) reply(code string) {
	if len(c.pending) == 0 {
		return // the greeting, or a 421 nobody asked for
	}
	verb := c.pending[0]
	c.pending = c.pending[1:]
	switch verb {
	case "MAIL":
		c.rcpts = 0 // a new transaction
	case "RCPT":
		if strings.HasPrefix(code, "2") {
			c.rcpts++
		}
	case ".", "BDAT LAST":
		// LMTP answers the end of a message once per accepted
		// recipient (RFC 2033 4.2): the replies after this one answer
		// it too, not the commands that follow.
		if c.lmtp && c.rcpts > 1 {
			c.rcpts--
			c.pending = append([]string{verb}, c.pending...)
		}
	case "AUTH":
		if code == "334" {
			// A challenge: the client's next line is a response.
			c.pending = append([]string{"AUTH"}, c.pending...)
			return
		}
		c.mode = tapCommand
		c.fromClient(nil)
	case "DATA", "STARTTLS":
		if c.mode != tapHold {
			return
		}
		switch {
		case verb == "DATA" && code == "354":
			// The content starts right after the DATA line's CRLF; its
			// end gets the next reply.
			c.mode, c.dataEnd = tapData, []byte("\r\n")
			c.pending = append([]string{"."}, c.pending...)
		case verb == "STARTTLS" && code == "220":
			// The TLS layer's tap takes over (overTLS); what the client
			// sent in the clear meanwhile the library drops unread.
			c.mode, c.client = tapOpaque, nil
			return
		default:
			c.mode = tapCommand
		}
		c.fromClient(nil)
	}
}

func (c *tapConn) logLine(who string, line []byte, more string) {
	if len(line) > maxTapLine {
		line, more = line[:maxTapLine], "..."
	}
	c.log.Log(context.Background(), slog.LevelDebug, who, "line", string(line)+more)
}
