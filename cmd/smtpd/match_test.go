package main

import (
	"bytes"
	"io"
	"net/netip"
	"strings"
	"testing"
	"testing/iotest"
)

func TestPatternListIgnoresCase(t *testing.T) {
	var l patternList
	if err := l.Set("*@Example.ORG, ,X?@y"); err != nil {
		t.Fatal(err)
	}
	if len(l) != 2 {
		t.Fatalf("list %q, want two entries", l)
	}
	for s, want := range map[string]bool{"BOB@example.org": true, "xa@Y": true, "x@y": false} {
		if l.match(s) != want {
			t.Errorf("match(%q) = %v, want %v", s, !want, want)
		}
	}
}

func TestHostList(t *testing.T) {
	var l hostList
	if err := l.Set("192.0.2.7/24,2001:db8::1, ::ffff:198.51.100.0/120,203.0.113.9"); err != nil {
		t.Fatal(err)
	}
	for s, want := range map[string]bool{
		"192.0.2.200":         true, // the /24, though written with a host part
		"192.0.3.1":           false,
		"2001:db8::1":         true,
		"2001:db8::2":         false,
		"198.51.100.5":        true, // mapped entry, plain client
		"::ffff:203.0.113.9":  true, // plain entry, mapped client
		"::ffff:203.0.113.10": false,
	} {
		if got := l.contains(netip.MustParseAddr(s)); got != want {
			t.Errorf("contains(%s) = %v, want %v", s, got, want)
		}
	}
	for _, bad := range []string{"300.0.0.1", "10.0.0.0/33", "example.org", "fe80::1%eth0"} {
		var l hostList
		if err := l.Set(bad); err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("Set(%q): error %v, want one naming it", bad, err)
		}
	}
}

// The mbox writers, fed one byte at a time as well as whole, since a
// "From " line or a CRLF may be split across writes.
func TestMboxrdQuoting(t *testing.T) {
	in := "Subject: x\r\n\r\nFrom me\r\n>From you\r\n>>From them\r\nFrom\r\n>Fro\r\nFromage\r\n From\r\nX From y\r\n\r\nend\r\n"
	want := "Subject: x\n\n>From me\n>>From you\n>>>From them\nFrom\n>Fro\nFromage\n From\nX From y\n\nend\n"
	for _, oneByte := range []bool{false, true} {
		var out bytes.Buffer
		q := &mboxrdWriter{w: &out}
		lw := &lfWriter{w: q}
		// Small writes, so that lines and CRLFs are split across them;
		// the struct hides strings.Reader's WriteTo, which would bypass
		// the buffer.
		var src io.Reader = struct{ io.Reader }{strings.NewReader(in)}
		if oneByte {
			src = iotest.OneByteReader(src)
		}
		if _, err := io.CopyBuffer(lw, src, make([]byte, 7)); err != nil {
			t.Fatal(err)
		}
		lw.flush()
		q.flush()
		if out.String() != want {
			t.Errorf("oneByte=%v:\ngot  %q\nwant %q", oneByte, out.String(), want)
		}
		if !q.atLineStart() {
			t.Errorf("oneByte=%v: not at a line start after a complete line", oneByte)
		}
	}

	// A message that ends inside a ">From"-like start of line.
	var out bytes.Buffer
	q := &mboxrdWriter{w: &out}
	q.Write([]byte("a\n>>Fr"))
	q.flush()
	if out.String() != "a\n>>Fr" || q.atLineStart() {
		t.Errorf("got %q, atLineStart %v", out.String(), q.atLineStart())
	}
}

func TestLFWriterKeepsLoneCR(t *testing.T) {
	var out bytes.Buffer
	w := &lfWriter{w: &out}
	w.Write([]byte("a\r"))
	w.Write([]byte("b\r\nc\r"))
	w.flush()
	if out.String() != "a\rb\nc\r" {
		t.Errorf("got %q", out.String())
	}
}
