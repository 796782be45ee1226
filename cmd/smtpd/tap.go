package main

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
)

// The library logs the verb of each command at Debug level, but not the
// command's argument nor the replies; -v promises both. tapListener watches
// each connection's bytes and logs them as lines: "client" lines and
// "server" lines, with the message content left out (its size is logged)
// and AUTH secrets masked. -record will write the same lines to a file,
// in the conformance suite's format, from the same place.
//
// The tap sits under the library, on the raw connection: after STARTTLS
// the bytes are encrypted, so it logs that TLS began and nothing more
// (the library will need to offer a hook above TLS for -v and -record).

// tapListener wraps the connections l accepts with a tapConn.
type tapListener struct {
	net.Listener
	log *slog.Logger
}

func (l *tapListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &tapConn{Conn: c, log: l.log.With("remote", c.RemoteAddr().String())}, nil
}

// tapMode is what the client's bytes are, as far as the tap can tell.
type tapMode int

const (
	tapCommand tapMode = iota // command lines
	tapHold                   // after DATA or STARTTLS: unknown until the reply
	tapData                   // message content, up to CRLF "." CRLF
	tapAuth                   // AUTH exchange: every client line is a secret
	tapOpaque                 // TLS: nothing more to read
)

// maxTapLine bounds a logged line; the library refuses longer commands.
const maxTapLine = 1024

// tapConn logs what passes through a connection.
type tapConn struct {
	net.Conn
	log *slog.Logger

	// mu: the session writes and reads from its goroutine, but Shutdown
	// writes its 421 from another.
	mu   sync.Mutex
	mode tapMode
	// pending are the verbs of the commands sent and not yet answered,
	// oldest first: with PIPELINING (RFC 2920) a reply answers the oldest
	// command, and DATA's 354 may come after replies to MAIL and RCPT.
	// "." stands for the message content, answered after its end.
	pending  []string
	client   []byte // a partial client line, or bytes held
	server   []byte // a partial reply line
	dataEnd  []byte // the last bytes of content, to find CRLF "." CRLF across reads
	dataSize int
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

func (c *tapConn) fromClient(b []byte) {
	switch c.mode {
	case tapOpaque:
		return
	case tapHold:
		c.client = append(c.client, b...)
		return
	case tapData:
		c.content(b)
		return
	}
	c.client = append(c.client, b...)
	for c.mode == tapCommand || c.mode == tapAuth {
		i := bytes.IndexByte(c.client, '\n')
		if i < 0 {
			if len(c.client) > maxTapLine {
				c.logLine("client", c.client[:maxTapLine], "...")
				c.client = c.client[:0]
			}
			return
		}
		line := c.client[:i+1]
		c.client = c.client[i+1:]
		c.command(bytes.TrimRight(line, "\r\n"))
	}
	// DATA or STARTTLS put the rest on hold: it stays in c.client.
}

// command logs one client line and sees what it does to the mode.
func (c *tapConn) command(line []byte) {
	if c.mode == tapAuth {
		c.logLine("client", []byte("***"), "")
		return
	}
	verb, arg, _ := strings.Cut(string(line), " ")
	switch strings.ToUpper(verb) {
	case "AUTH":
		// "AUTH PLAIN <initial response>": the mechanism is no secret,
		// the response is.
		mech, resp, _ := strings.Cut(arg, " ")
		if resp != "" {
			mech += " ***"
		}
		c.logLine("client", []byte(strings.TrimSpace(verb+" "+mech)), "")
		c.mode = tapAuth
		c.pending = append(c.pending, "AUTH")
		return
	case "DATA", "STARTTLS":
		// What follows is content or TLS if the reply says so: hold it
		// until then.
		c.mode = tapHold
	}
	c.pending = append(c.pending, strings.ToUpper(verb))
	if len(line) > maxTapLine {
		c.logLine("client", line[:maxTapLine], "...")
		return
	}
	c.logLine("client", line, "")
}

// content follows the message content, to log its size and find its end.
func (c *tapConn) content(b []byte) {
	buf := append(append([]byte(nil), c.dataEnd...), b...)
	if i := bytes.Index(buf, []byte("\r\n.\r\n")); i >= 0 {
		// Octets as sent, dot-stuffing included, up to the end mark.
		c.dataSize += i + 2 - len(c.dataEnd)
		c.log.Debug("client", "content", strconv.Itoa(c.dataSize)+" octets", "line", ".")
		rest := append([]byte(nil), buf[i+5:]...)
		c.mode, c.dataEnd, c.dataSize = tapCommand, nil, 0
		c.fromClient(rest)
		return
	}
	c.dataSize += len(b)
	// Keep the last 4 bytes: the end mark may span reads.
	c.dataEnd = append(c.dataEnd[:0], buf[max(0, len(buf)-4):]...)
}

func (c *tapConn) fromServer(b []byte) {
	if c.mode == tapOpaque {
		return
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
	case "AUTH":
		if code == "334" {
			// A challenge: the client's next line is a response.
			c.pending = append([]string{"AUTH"}, c.pending...)
			return
		}
		c.mode = tapCommand
	case "DATA", "STARTTLS":
		if c.mode != tapHold {
			return
		}
		held := c.client
		c.client = nil
		switch {
		case verb == "DATA" && code == "354":
			// The content starts right after the DATA line's CRLF; its
			// end gets the next reply.
			c.mode, c.dataEnd = tapData, []byte("\r\n")
			c.pending = append([]string{"."}, c.pending...)
		case verb == "STARTTLS" && code == "220":
			c.mode = tapOpaque
			c.log.Debug("server", "line", "[TLS from here on]")
			return
		default:
			c.mode = tapCommand
		}
		c.fromClient(held)
	}
}

func (c *tapConn) logLine(who string, line []byte, more string) {
	c.log.Log(context.Background(), slog.LevelDebug, who, "line", string(line)+more)
}
