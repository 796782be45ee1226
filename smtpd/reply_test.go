package smtpd

import "testing"

func TestValidEnhanced(t *testing.T) {
	for s, want := range map[string]bool{
		"2.0.0": true, "5.7.8": true, "4.4.2": true, "5.123.456": true, "5.7.11": true,
		"3.0.0": false, "5.0": false, "5..0": false, "5.0.": false, ".5.0.0": false,
		"5.1234.0": false, "5.0.1234": false, "5.a.0": false, "": false, "5.0.0.0": false, "50.0.0": false,
	} {
		if got := validEnhanced(s); got != want {
			t.Errorf("validEnhanced(%q) = %v, want %v", s, got, want)
		}
	}
}

// TestReplyLine: the wire form of replies, with and without enhanced codes,
// and text that cannot break the line.
func TestReplyLine(t *testing.T) {
	for _, tc := range []struct {
		r    Reply
		esc  bool
		want string
	}{
		{Reply{Code: 250, Enhanced: "2.1.0", Text: "OK"}, true, "250 2.1.0 OK"},
		{Reply{Code: 250, Enhanced: "2.1.0", Text: "OK"}, false, "250 OK"},
		{Reply{Code: 550, Text: "No"}, true, "550 5.0.0 No"},
		{Reply{Code: 550, Enhanced: "4.1.1", Text: "Wrong class"}, true, "550 5.0.0 Wrong class"},
		{Reply{Code: 354, Enhanced: "2.0.0", Text: "Go ahead"}, true, "354 Go ahead"},
		{Reply{Code: 99, Text: "Bad code"}, true, "451 4.0.0 Bad code"},
		{Reply{Code: 550, Text: "a\r\n250 b\x00c"}, false, "550 a  250 b c"},
	} {
		if got := string(tc.r.appendLine(nil, tc.esc, ' ')); got != tc.want {
			t.Errorf("%+v: got %q, want %q", tc.r, got, tc.want)
		}
	}
}
