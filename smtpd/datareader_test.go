package smtpd

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"testing/iotest"
)

// readConfig is one way of cutting the same data into pieces: the
// bufio.Reader's size, whether the connection delivers one octet per read,
// and the size of p in the handler's Read calls.
type readConfig struct {
	bufSize  int
	oneByte  bool // the connection delivers one octet per read
	readSize int  // 0: io.ReadAll chooses; 1: iotest.OneByteReader; else p's size
}

func (c readConfig) String() string {
	return fmt.Sprintf("buf%d/oneByte=%v/read%d", c.bufSize, c.oneByte, c.readSize)
}

// readConfigs cover bufio's smallest buffer (16 octets), an odd size, a
// usual one, octet-at-a-time connections and octet-at-a-time handlers.
var readConfigs = []readConfig{
	{4096, false, 0},
	{16, false, 0},
	{16, false, 1},
	{16, true, 1},
	{17, false, 7},
	{4096, true, 0},
	{4096, false, 1},
}

// result is everything observable about reading one message.
type result struct {
	content  []byte
	err      error // Read's final error; nil when it was io.EOF
	drainErr error
	again    error  // Read's error after drain: sticky
	rest     []byte // what the session reads next
	viol     error
	size     int64
	ended    bool
}

// readMessage reads one message from in the way c says, drains it and
// collects the result.
func readMessage(in []byte, c readConfig, acceptBare bool, maxSize int64, maxLine int) result {
	var src io.Reader = bytes.NewReader(in)
	if c.oneByte {
		src = iotest.OneByteReader(src)
	}
	br := bufio.NewReaderSize(src, c.bufSize)
	var dr dataReader
	dr.reset(br, maxSize, maxLine, acceptBare)

	var res result
	switch c.readSize {
	case 0:
		res.content, res.err = io.ReadAll(&dr)
	case 1:
		res.content, res.err = io.ReadAll(iotest.OneByteReader(&dr))
	default:
		p := make([]byte, c.readSize)
		for {
			n, err := dr.Read(p)
			res.content = append(res.content, p[:n]...)
			if err != nil {
				if err != io.EOF {
					res.err = err
				}
				break
			}
		}
	}
	res.drainErr = dr.drain()
	_, res.again = dr.Read(make([]byte, 1))
	res.rest, _ = io.ReadAll(br)
	res.viol, res.size, res.ended = dr.violation(), dr.size(), dr.ended()
	return res
}

// decodeRef is a model of dataReader written straight from the rules, one
// octet at a time and with no pieces, to check dataReader against. It
// returns the content up to the first violation, the violation or
// io.ErrUnexpectedEOF, whether the end mark was found and the data after it.
func decodeRef(in []byte, acceptBare bool, maxSize int64, maxLine int) (content []byte, err error, ended bool, rest []byte) {
	content = []byte{}
	bol, lineLen := true, 0
	for i := 0; i < len(in); i++ {
		// RFC 5321 4.1.1.4: CRLF "." CRLF, the first CRLF ending the
		// DATA command when the data starts with it.
		if bol && bytes.HasPrefix(in[i:], []byte(".\r\n")) {
			return content, err, true, in[i+3:]
		}
		c := in[i]
		afterCR := i > 0 && in[i-1] == '\r'
		stuffed := bol && c == '.'
		bol = c == '\n' && afterCR
		if !stuffed {
			lineLen++ // RFC 5321 4.5.3.1.6: the stuffing dot does not count
		}
		if err != nil {
			continue // only looking for the end mark now
		}
		switch {
		case !acceptBare && (afterCR && c != '\n' || !afterCR && c == '\n'):
			err = ErrBareLineEnd
		case maxLine > 0 && lineLen > maxLine:
			err = ErrLineTooLong
		case !stuffed && maxSize > 0 && int64(len(content)) >= maxSize:
			err = ErrMessageTooBig
		case !stuffed:
			content = append(content, c)
		}
		if c == '\n' {
			lineLen = 0
		}
	}
	if err == nil {
		err = io.ErrUnexpectedEOF
	}
	return content, err, false, nil
}

// checkResult compares res with the expected outcome. readErr is Read's
// final error (nil for a clean end), drainErr drain's.
func checkResult(t *testing.T, res result, want string, readErr, drainErr error, rest string) {
	t.Helper()
	if string(res.content) != want {
		t.Errorf("content = %q, want %q", res.content, want)
	}
	if res.err != readErr {
		t.Errorf("Read error = %v, want %v", res.err, readErr)
	}
	if res.drainErr != drainErr {
		t.Errorf("drain() = %v, want %v", res.drainErr, drainErr)
	}
	if string(res.rest) != rest {
		t.Errorf("left after drain: %q, want %q", res.rest, rest)
	}
	if res.size != int64(len(want)) {
		t.Errorf("size() = %d, want %d", res.size, len(want))
	}
	if res.ended != (drainErr == nil) {
		t.Errorf("ended() = %v, want %v", res.ended, drainErr == nil)
	}
	wantViol := readErr
	if readErr == io.ErrUnexpectedEOF {
		wantViol = nil
	}
	if res.viol != wantViol {
		t.Errorf("violation() = %v, want %v", res.viol, wantViol)
	}
	wantAgain := readErr
	if readErr == nil {
		wantAgain = io.EOF
	}
	if res.again != wantAgain {
		t.Errorf("Read after drain: %v, want %v", res.again, wantAgain)
	}
}

// Sixteen octets, a CR as the sixteenth: bufio's smallest buffer returns
// the CR at the end of one piece and its LF, if any, in the next.
const cr16 = "0123456789abcde\r"

var dataReaderTests = []struct {
	name    string
	in      string // the data after the 354 reply; NEXT is the next command
	bare    bool   // acceptBare
	maxSize int64
	maxLine int
	want    string // content Read returns, up to any violation
	err     error  // Read's final error; nil for io.EOF
	// drainErr is drain's result: nil unless the connection ends early.
	drainErr error
	rest     string // left in the bufio.Reader after drain
}{
	// RFC 5321 4.1.1.4: the CRLF before the final dot is content; the
	// data may start with the end mark.
	{name: "empty message", in: ".\r\nNEXT\r\n", want: "", rest: "NEXT\r\n"},
	{name: "simple", in: "Subject: hi\r\n\r\nHello.\r\n.\r\nNEXT\r\n", want: "Subject: hi\r\n\r\nHello.\r\n", rest: "NEXT\r\n"},
	{name: "one empty line", in: "\r\n.\r\nNEXT\r\n", want: "\r\n", rest: "NEXT\r\n"},
	{name: "dot not at line start", in: "a.\r\n.\r\nNEXT\r\n", want: "a.\r\n", rest: "NEXT\r\n"},
	{name: "space before dot", in: " .\r\n.\r\nNEXT\r\n", want: " .\r\n", rest: "NEXT\r\n"},
	{name: "only the first end mark", in: "a\r\n.\r\n.\r\nNEXT\r\n", want: "a\r\n", rest: ".\r\nNEXT\r\n"},

	// RFC 5321 4.5.2: dot-unstuffing.
	{name: "stuffed dot line", in: "..\r\n.\r\nNEXT\r\n", want: ".\r\n", rest: "NEXT\r\n"},
	{name: "stuffed dots", in: "...\r\na\r\n..b\r\n.\r\nNEXT\r\n", want: "..\r\na\r\n.b\r\n", rest: "NEXT\r\n"},
	{name: "unstuffed dot x", in: ".x\r\n.\r\nNEXT\r\n", want: "x\r\n", rest: "NEXT\r\n"},
	{name: "dot space", in: ". \r\n.\r\nNEXT\r\n", want: " \r\n", rest: "NEXT\r\n"},
	{name: "dots inside line", in: "a.b.\r\n.\r\nNEXT\r\n", want: "a.b.\r\n", rest: "NEXT\r\n"},
	{name: "dot after bare LF kept", bare: true, in: "a\n.b\r\n.\r\nNEXT\r\n", want: "a\n.b\r\n", rest: "NEXT\r\n"},
	{name: "dot after bare CR kept", bare: true, in: "a\r.b\r\n.\r\nNEXT\r\n", want: "a\r.b\r\n", rest: "NEXT\r\n"},
	{name: "NUL bytes", in: "a\x00b\r\n\x00\r\n.\r\nNEXT\r\n", want: "a\x00b\r\n\x00\r\n", rest: "NEXT\r\n"},

	// SMTP smuggling: none of these ends the data. Strict mode refuses
	// the message and drain still finds the real end; acceptBare keeps
	// them as content.
	{name: "LF.LF strict", in: "a\n.\nRCPT\r\n.\r\nNEXT\r\n", want: "a", err: ErrBareLineEnd, rest: "NEXT\r\n"},
	{name: "LF.LF bare", bare: true, in: "a\n.\nRCPT\r\n.\r\nNEXT\r\n", want: "a\n.\nRCPT\r\n", rest: "NEXT\r\n"},
	{name: "LF.CRLF strict", in: "a\n.\r\nRCPT\r\n.\r\nNEXT\r\n", want: "a", err: ErrBareLineEnd, rest: "NEXT\r\n"},
	{name: "LF.CRLF bare", bare: true, in: "a\n.\r\nRCPT\r\n.\r\nNEXT\r\n", want: "a\n.\r\nRCPT\r\n", rest: "NEXT\r\n"},
	{name: "CRLF.LF strict", in: "a\r\n.\nRCPT\r\n.\r\nNEXT\r\n", want: "a\r\n", err: ErrBareLineEnd, rest: "NEXT\r\n"},
	{name: "CRLF.LF bare", bare: true, in: "a\r\n.\nRCPT\r\n.\r\nNEXT\r\n", want: "a\r\n\nRCPT\r\n", rest: "NEXT\r\n"},
	{name: "CR.CR strict", in: "a\r.\rRCPT\r\n.\r\nNEXT\r\n", want: "a\r", err: ErrBareLineEnd, rest: "NEXT\r\n"},
	{name: "CR.CR bare", bare: true, in: "a\r.\rRCPT\r\n.\r\nNEXT\r\n", want: "a\r.\rRCPT\r\n", rest: "NEXT\r\n"},
	{name: "CR.LF strict", in: "a\r.\nRCPT\r\n.\r\nNEXT\r\n", want: "a\r", err: ErrBareLineEnd, rest: "NEXT\r\n"},
	{name: "CR.LF bare", bare: true, in: "a\r.\nRCPT\r\n.\r\nNEXT\r\n", want: "a\r.\nRCPT\r\n", rest: "NEXT\r\n"},
	{name: "CRLF.CR strict", in: "a\r\n.\rRCPT\r\n.\r\nNEXT\r\n", want: "a\r\n\r", err: ErrBareLineEnd, rest: "NEXT\r\n"},
	{name: "CRLF.CR bare", bare: true, in: "a\r\n.\rRCPT\r\n.\r\nNEXT\r\n", want: "a\r\n\rRCPT\r\n", rest: "NEXT\r\n"},
	{name: "LF.CR strict", in: "a\n.\rRCPT\r\n.\r\nNEXT\r\n", want: "a", err: ErrBareLineEnd, rest: "NEXT\r\n"},
	{name: "LF.CR bare", bare: true, in: "a\n.\rRCPT\r\n.\r\nNEXT\r\n", want: "a\n.\rRCPT\r\n", rest: "NEXT\r\n"},
	{name: "CR.CRLF strict", in: "a\r.\r\nRCPT\r\n.\r\nNEXT\r\n", want: "a\r", err: ErrBareLineEnd, rest: "NEXT\r\n"},
	{name: "CR.CRLF bare", bare: true, in: "a\r.\r\nRCPT\r\n.\r\nNEXT\r\n", want: "a\r.\r\nRCPT\r\n", rest: "NEXT\r\n"},
	{name: "CRLF.CRCRLF strict", in: "a\r\n.\r\r\nRCPT\r\n.\r\nNEXT\r\n", want: "a\r\n\r", err: ErrBareLineEnd, rest: "NEXT\r\n"},
	{name: "CRLF.CRCRLF bare", bare: true, in: "a\r\n.\r\r\nRCPT\r\n.\r\nNEXT\r\n", want: "a\r\n\r\r\nRCPT\r\n", rest: "NEXT\r\n"},
	{name: "NUL before dot", in: "a\r\n\x00.\r\nRCPT\r\n.\r\nNEXT\r\n", want: "a\r\n\x00.\r\nRCPT\r\n", rest: "NEXT\r\n"},
	{name: "NUL after dot", in: "a\r\n.\x00\r\nRCPT\r\n.\r\nNEXT\r\n", want: "a\r\n\x00\r\nRCPT\r\n", rest: "NEXT\r\n"},
	{name: "starts LF.LF strict", in: "\n.\nRCPT\r\n.\r\nNEXT\r\n", want: "", err: ErrBareLineEnd, rest: "NEXT\r\n"},
	{name: "starts LF.LF bare", bare: true, in: "\n.\nRCPT\r\n.\r\nNEXT\r\n", want: "\n.\nRCPT\r\n", rest: "NEXT\r\n"},
	{name: "starts .LF strict", in: ".\nRCPT\r\n.\r\nNEXT\r\n", want: "", err: ErrBareLineEnd, rest: "NEXT\r\n"},
	{name: "starts .LF bare", bare: true, in: ".\nRCPT\r\n.\r\nNEXT\r\n", want: "\nRCPT\r\n", rest: "NEXT\r\n"},
	// CR CRLF "." CRLF does hold CRLF "." CRLF: a real end, reached by
	// drain in strict mode too.
	{name: "CR CRLF.CRLF strict", in: "a\r\r\n.\r\nRCPT\r\n.\r\nNEXT\r\n", want: "a\r", err: ErrBareLineEnd, rest: "RCPT\r\n.\r\nNEXT\r\n"},
	{name: "CR CRLF.CRLF bare", bare: true, in: "a\r\r\n.\r\nRCPT\r\n.\r\nNEXT\r\n", want: "a\r\r\n", rest: "RCPT\r\n.\r\nNEXT\r\n"},

	// Lines cut into pieces by a 16-octet bufio.Reader (and not by
	// larger ones): a CRLF split between pieces is still a line end.
	{name: "split CRLF", in: cr16 + "\n.\r\nNEXT\r\n", want: cr16 + "\n", rest: "NEXT\r\n"},
	{name: "split CRLF then stuffed", in: cr16 + "\n..x\r\n.\r\nNEXT\r\n", want: cr16 + "\n.x\r\n", rest: "NEXT\r\n"},
	{name: "split CRLF then .LF", in: cr16 + "\n.\nRCPT\r\n.\r\nNEXT\r\n", want: cr16 + "\n", err: ErrBareLineEnd, rest: "NEXT\r\n"},
	{name: "split bare CR strict", in: cr16 + "X\r\n.\r\nNEXT\r\n", want: cr16, err: ErrBareLineEnd, rest: "NEXT\r\n"},
	{name: "split bare CR bare", bare: true, in: cr16 + "X\r\n.\r\nNEXT\r\n", want: cr16 + "X\r\n", rest: "NEXT\r\n"},
	{name: "split CR CRLF strict", in: cr16 + "\r\n.\r\nNEXT\r\n", want: cr16, err: ErrBareLineEnd, rest: "NEXT\r\n"},
	{name: "split CR CRLF bare", bare: true, in: cr16 + "\r\n.\r\nNEXT\r\n", want: cr16 + "\r\n", rest: "NEXT\r\n"},
	{name: "split bare LF strict", in: "0123456789abcdef\n\r\n.\r\nNEXT\r\n", want: "0123456789abcdef", err: ErrBareLineEnd, rest: "NEXT\r\n"},
	{name: "long stuffed line", in: "." + strings.Repeat("x", 50) + "\r\n.\r\nNEXT\r\n", want: strings.Repeat("x", 50) + "\r\n", rest: "NEXT\r\n"},

	// RFC 5321 4.5.3.1.6: line length, CRLF included, "not counting the
	// leading dot duplicated for transparency".
	{name: "line of maxLine", maxLine: 10, in: "12345678\r\n.\r\nNEXT\r\n", want: "12345678\r\n", rest: "NEXT\r\n"},
	{name: "line of maxLine+1", maxLine: 10, in: "123456789\r\n.\r\nNEXT\r\n", want: "123456789\r", err: ErrLineTooLong, rest: "NEXT\r\n"},
	{name: "stuffed line of maxLine", maxLine: 10, in: "..2345678\r\n.\r\nNEXT\r\n", want: ".2345678\r\n", rest: "NEXT\r\n"},
	{name: "stuffed line of maxLine+1", maxLine: 10, in: "..23456789\r\n.\r\nNEXT\r\n", want: ".23456789\r", err: ErrLineTooLong, rest: "NEXT\r\n"},
	{name: "dot-led line of maxLine+1 as sent", maxLine: 10, in: ".23456789\r\n.\r\nNEXT\r\n", want: "23456789\r\n", rest: "NEXT\r\n"},
	{name: "pieces of maxLine", maxLine: 40, in: strings.Repeat("y", 38) + "\r\n.\r\nNEXT\r\n", want: strings.Repeat("y", 38) + "\r\n", rest: "NEXT\r\n"},
	{name: "pieces of maxLine+1", maxLine: 40, in: strings.Repeat("y", 39) + "\r\n.\r\nNEXT\r\n", want: strings.Repeat("y", 39) + "\r", err: ErrLineTooLong, rest: "NEXT\r\n"},
	{name: "stuffed pieces of maxLine", maxLine: 40, in: ".." + strings.Repeat("y", 37) + "\r\n.\r\nNEXT\r\n", want: "." + strings.Repeat("y", 37) + "\r\n", rest: "NEXT\r\n"},
	{name: "stuffed pieces of maxLine+1", maxLine: 40, in: ".." + strings.Repeat("y", 38) + "\r\n.\r\nNEXT\r\n", want: "." + strings.Repeat("y", 38) + "\r", err: ErrLineTooLong, rest: "NEXT\r\n"},
	{name: "bare LF ends a line for length", bare: true, maxLine: 10, in: "1234567\n1234567\n12345678\r\n.\r\nNEXT\r\n", want: "1234567\n1234567\n12345678\r\n", rest: "NEXT\r\n"},
	{name: "bare CR does not end a line", bare: true, maxLine: 10, in: "12345\r12345\r\n.\r\nNEXT\r\n", want: "12345\r1234", err: ErrLineTooLong, rest: "NEXT\r\n"},
	{name: "too long then smuggled end", maxLine: 10, in: "123456789012\r\n.\nRCPT\r\n.\r\nNEXT\r\n", want: "1234567890", err: ErrLineTooLong, rest: "NEXT\r\n"},
	{name: "no line limit", in: strings.Repeat("z", 5000) + "\r\n.\r\nNEXT\r\n", want: strings.Repeat("z", 5000) + "\r\n", rest: "NEXT\r\n"},

	// RFC 1870 6: message size, after unstuffing.
	{name: "size of maxSize", maxSize: 5, in: "abc\r\n.\r\nNEXT\r\n", want: "abc\r\n", rest: "NEXT\r\n"},
	{name: "size of maxSize+1", maxSize: 5, in: "abcd\r\n.\r\nNEXT\r\n", want: "abcd\r", err: ErrMessageTooBig, rest: "NEXT\r\n"},
	{name: "stuffed size of maxSize", maxSize: 5, in: "..bc\r\n.\r\nNEXT\r\n", want: ".bc\r\n", rest: "NEXT\r\n"},
	{name: "stuffed size of maxSize+1", maxSize: 5, in: "..bcd\r\n.\r\nNEXT\r\n", want: ".bcd\r", err: ErrMessageTooBig, rest: "NEXT\r\n"},
	{name: "size over two lines", maxSize: 5, in: "a\r\nb\r\n.\r\nNEXT\r\n", want: "a\r\nb\r", err: ErrMessageTooBig, rest: "NEXT\r\n"},
	{name: "too big in pieces", maxSize: 100, in: strings.Repeat("q", 200) + "\r\n.\nRCPT\r\n.\r\nNEXT\r\n", want: strings.Repeat("q", 100), err: ErrMessageTooBig, rest: "NEXT\r\n"},

	// The first octet that breaks a rule decides; at the same octet a
	// bare line end goes before the line length, and that before size.
	{name: "size before line", maxSize: 4, maxLine: 5, in: "abcd\r\n.\r\nNEXT\r\n", want: "abcd", err: ErrMessageTooBig, rest: "NEXT\r\n"},
	{name: "line before size", maxSize: 5, maxLine: 5, in: "abcd\r\n.\r\nNEXT\r\n", want: "abcd\r", err: ErrLineTooLong, rest: "NEXT\r\n"},
	{name: "bare before line", maxLine: 4, in: "abcd\n\r\n.\r\nNEXT\r\n", want: "abcd", err: ErrBareLineEnd, rest: "NEXT\r\n"},
	{name: "line before bare", maxLine: 4, in: "abcde\n\r\n.\r\nNEXT\r\n", want: "abcd", err: ErrLineTooLong, rest: "NEXT\r\n"},

	// The connection ends before the end mark.
	{name: "EOF at once", in: "", want: "", err: io.ErrUnexpectedEOF, drainErr: io.ErrUnexpectedEOF},
	{name: "EOF after line", in: "abc\r\n", want: "abc\r\n", err: io.ErrUnexpectedEOF, drainErr: io.ErrUnexpectedEOF},
	{name: "EOF after dot", in: "abc\r\n.", want: "abc\r\n", err: io.ErrUnexpectedEOF, drainErr: io.ErrUnexpectedEOF},
	{name: "EOF after dot CR", in: "abc\r\n.\r", want: "abc\r\n\r", err: io.ErrUnexpectedEOF, drainErr: io.ErrUnexpectedEOF},
	{name: "EOF after LF.LF", bare: true, in: "a\n.\n", want: "a\n.\n", err: io.ErrUnexpectedEOF, drainErr: io.ErrUnexpectedEOF},
	{name: "EOF after violation", in: "a\nb", want: "a", err: ErrBareLineEnd, drainErr: io.ErrUnexpectedEOF},
}

func TestDataReader(t *testing.T) {
	if n := bufio.NewReaderSize(nil, 1).Size(); n != 16 {
		// dataReader relies on a three-octet line never being cut.
		t.Fatalf("bufio's smallest buffer is %d octets, not 16", n)
	}
	for _, tt := range dataReaderTests {
		t.Run(tt.name, func(t *testing.T) {
			// The model must agree with the table too.
			content, err, ended, rest := decodeRef([]byte(tt.in), tt.bare, tt.maxSize, tt.maxLine)
			if string(content) != tt.want || err != tt.err || ended != (tt.drainErr == nil) || string(rest) != tt.rest {
				t.Errorf("decodeRef = %q, %v, %v, %q", content, err, ended, rest)
			}
			for _, c := range readConfigs {
				res := readMessage([]byte(tt.in), c, tt.bare, tt.maxSize, tt.maxLine)
				t.Run(c.String(), func(t *testing.T) {
					checkResult(t, res, tt.want, tt.err, tt.drainErr, tt.rest)
				})
			}
		})
	}
}

// TestDataReaderIOError checks that an error from the connection reaches
// the handler and the server as it is, after the content before it.
func TestDataReaderIOError(t *testing.T) {
	errBoom := errors.New("boom")
	for _, c := range readConfigs {
		src := io.MultiReader(strings.NewReader("abc\r\nde"), iotest.ErrReader(errBoom))
		var dr dataReader
		dr.reset(bufio.NewReaderSize(src, c.bufSize), 0, 0, false)
		got, err := io.ReadAll(&dr)
		if string(got) != "abc\r\nde" || err != errBoom {
			t.Errorf("%v: ReadAll = %q, %v; want %q, %v", c, got, err, "abc\r\nde", errBoom)
		}
		if err := dr.drain(); err != errBoom {
			t.Errorf("%v: drain() = %v, want %v", c, err, errBoom)
		}
		if dr.ended() || dr.violation() != nil {
			t.Errorf("%v: ended() = %v, violation() = %v", c, dr.ended(), dr.violation())
		}
	}
}

// TestDataReaderIOTest runs the standard library's reader checks.
func TestDataReaderIOTest(t *testing.T) {
	content := "Subject: x\r\n\r\n.hidden\r\n" + strings.Repeat("line\r\n", 100)
	in := "Subject: x\r\n\r\n..hidden\r\n" + strings.Repeat("line\r\n", 100) + ".\r\n"
	var dr dataReader
	dr.reset(bufio.NewReaderSize(strings.NewReader(in), 16), 0, 1000, false)
	if err := iotest.TestReader(&dr, []byte(content)); err != nil {
		t.Fatal(err)
	}
}

// encode is what a correct client sends for content (RFC 5321 4.5.2): a
// dot in front of every line that starts with one, then the end mark.
// Content must be empty or end with CRLF.
func encode(content []byte) []byte {
	var b []byte
	bol := true
	for i, c := range content {
		if bol && c == '.' {
			b = append(b, '.')
		}
		b = append(b, c)
		bol = c == '\n' && i > 0 && content[i-1] == '\r'
	}
	return append(b, ".\r\n"...)
}

// TestDataReaderRoundTrip encodes random content the way a client must
// and checks that acceptBare mode gives it back unchanged, and strict mode
// too unless it holds a bare CR or LF.
func TestDataReaderRoundTrip(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte("..\r\r\n\nab \x00")
	for i := 0; i < 2000; i++ {
		content := make([]byte, rnd.IntN(100))
		for j := range content {
			content[j] = alphabet[rnd.IntN(len(alphabet))]
		}
		if len(content) > 0 && !bytes.HasSuffix(content, []byte("\r\n")) {
			content = append(content, "\r\n"...)
		}
		in := append(encode(content), "NEXT"...)
		c := readConfigs[i%len(readConfigs)]

		res := readMessage(in, c, true, 0, 0)
		checkResult(t, res, string(content), nil, nil, "NEXT")

		norm := bytes.ReplaceAll(content, []byte("\r\n"), nil)
		if bytes.ContainsAny(norm, "\r\n") {
			continue // strict mode refuses it; TestDataReader covers that
		}
		res = readMessage(in, c, false, 0, 0)
		checkResult(t, res, string(content), nil, nil, "NEXT")
		if t.Failed() {
			t.Fatalf("content %q, encoded %q, %v", content, in, c)
		}
	}
}

// TestDataReaderNoAllocs checks that reading and draining a message, with
// or without a violation, allocates nothing: the message is never held.
func TestDataReaderNoAllocs(t *testing.T) {
	line := strings.Repeat("x", 78) + "\r\n"
	in := []byte(strings.Repeat(line, 1000) + "a\nb\r\n" + strings.Repeat(line, 1000) + ".\r\n")
	src := bytes.NewReader(in)
	br := bufio.NewReader(src)
	var dr dataReader
	// Not io.Copy: io.Discard's buffers come from a sync.Pool, which
	// the race detector empties at random.
	p := make([]byte, 4096)
	for _, acceptBare := range []bool{true, false} {
		allocs := testing.AllocsPerRun(10, func() {
			src.Reset(in)
			br.Reset(src)
			dr.reset(br, 0, 1000, acceptBare)
			for {
				if _, err := dr.Read(p); err != nil {
					break
				}
			}
			if err := dr.drain(); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("acceptBare=%v: %v allocations per message, want 0", acceptBare, allocs)
		}
	}
}

// FuzzDataReader checks dataReader against decodeRef, for data with and
// without an end mark after it, and that no way of cutting the data into
// pieces changes the outcome.
func FuzzDataReader(f *testing.F) {
	for _, tt := range dataReaderTests {
		f.Add([]byte(tt.in))
	}
	limits := []struct {
		maxSize int64
		maxLine int
	}{{0, 0}, {0, 16}, {33, 0}, {20, 5}}
	f.Fuzz(func(t *testing.T, data []byte) {
		withEnd := append(append(data[:len(data):len(data)], "\r\n.\r\n"...), "NEXT"...)
		for _, in := range [][]byte{withEnd, data} {
			for _, acceptBare := range []bool{false, true} {
				for _, l := range limits {
					content, readErr, ended, rest := decodeRef(in, acceptBare, l.maxSize, l.maxLine)
					var drainErr error
					if !ended {
						drainErr = io.ErrUnexpectedEOF
					}
					for _, c := range readConfigs {
						res := readMessage(in, c, acceptBare, l.maxSize, l.maxLine)
						checkResult(t, res, string(content), readErr, drainErr, string(rest))
						if len(res.content) > len(in) {
							t.Errorf("content longer than the input")
						}
						// The only end mark is CRLF "." CRLF.
						if res.ended {
							used := in[:len(in)-len(res.rest)]
							if !bytes.Equal(used, []byte(".\r\n")) && !bytes.HasSuffix(used, []byte("\r\n.\r\n")) {
								t.Errorf("ended after %q", used)
							}
						}
						if t.Failed() {
							t.Fatalf("in %q, acceptBare=%v, limits %+v, %v", in, acceptBare, l, c)
						}
					}
				}
			}
		}
	})
}

// BenchmarkDataReader reads messages of 78-character lines, the way the
// server hands them to a handler that copies them somewhere.
func BenchmarkDataReader(b *testing.B) {
	for _, size := range []int{1 << 10, 100 << 10} {
		line := strings.Repeat("x", 78) + "\r\n"
		in := []byte(strings.Repeat(line, size/len(line)+1) + ".\r\n")
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
			src := bytes.NewReader(in)
			br := bufio.NewReader(src)
			var dr dataReader
			b.SetBytes(int64(len(in)))
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				src.Reset(in)
				br.Reset(src)
				dr.reset(br, 0, 1000, false)
				if _, err := io.Copy(io.Discard, &dr); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// ended reports whether the end-of-data mark was consumed.
func (r *dataReader) ended() bool { return r.done }
