package transcript

import (
	"bytes"
	"testing"
)

// FuzzParse checks that Parse never panics, and that whatever it accepts
// survives Write and Parse again unchanged.
func FuzzParse(f *testing.F) {
	f.Add([]byte(example))
	f.Add([]byte("# c\nref: r\nS: 220\nC! \"\\x00.\\r\\n\" * 3\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		tr, err := Parse("f.txt", data)
		if err != nil {
			return
		}
		var b bytes.Buffer
		if err := Write(&b, tr); err != nil {
			t.Fatal(err)
		}
		back, err := Parse("f.txt", b.Bytes())
		if err != nil {
			t.Fatalf("Write's output does not parse: %v\n%s", err, b.String())
		}
		if !sameTranscript(tr, back) {
			t.Fatalf("round trip changed the transcript:\n%q\n%s", data, b.String())
		}
	})
}
