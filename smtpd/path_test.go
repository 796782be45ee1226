package smtpd

import (
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

// rfcLimits are the RFC 5321 4.5.3.1 minimum maximums.
var rfcLimits = pathLimits{localPart: 64, domain: 255, path: 256}

// utf8Limits are rfcLimits in a transaction that declared SMTPUTF8.
var utf8Limits = pathLimits{localPart: 64, domain: 255, path: 256, utf8: true}

// pathCase is one MAIL or RCPT argument and what parsing it must give:
// the path and parameters when code is 0, otherwise the reply.
type pathCase struct {
	arg    string
	lim    *pathLimits // nil for rfcLimits
	want   Path
	params Params
	code   int
	enh    string
}

// label63 is a domain label of the largest size RFC 1035 2.3.4 allows.
var label63 = strings.Repeat("a", 63)

// domainOf returns a valid domain of exactly n octets (n >= 3).
func domainOf(n int) string {
	var b strings.Builder
	for b.Len() < n {
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		l := min(63, n-b.Len())
		if rest := n - b.Len() - l; rest == 1 {
			l-- // leave room for a label after the dot
		}
		b.WriteString(strings.Repeat("d", l))
	}
	return b.String()
}

var mailCases = []pathCase{
	// Accepted.
	{arg: "FROM:<a@b.example>", want: Path{"a", "b.example"}},
	{arg: "FROM:<>", want: Path{}},
	{arg: "from:<a@b.example>", want: Path{"a", "b.example"}},
	{arg: "FrOm:<a@b.example>", want: Path{"a", "b.example"}},
	{arg: "FROM: <a@b.example>", want: Path{"a", "b.example"}},
	{arg: "FROM:   <>", want: Path{}},
	{arg: "FROM:<a@b.example>   ", want: Path{"a", "b.example"}},
	{arg: "FROM:<> SIZE=10 BODY=8BITMIME", want: Path{}, params: Params{"SIZE": "10", "BODY": "8BITMIME"}},
	{arg: "FROM:<a@b.example>  size=10   Body=8bitmime  ", want: Path{"a", "b.example"}, params: Params{"SIZE": "10", "BODY": "8bitmime"}},
	{arg: "FROM:<a@b.example> SMTPUTF8", want: Path{"a", "b.example"}, params: Params{"SMTPUTF8": ""}},
	{arg: "FROM:<a@b.example> AUTH=<> RET=HDRS ENVID=QQ314159", want: Path{"a", "b.example"}, params: Params{"AUTH": "<>", "RET": "HDRS", "ENVID": "QQ314159"}},
	{arg: "FROM:<John.Q.Public@Mail.Example>", want: Path{"John.Q.Public", "Mail.Example"}},
	{arg: "FROM:<!#$%&'*+-/=?^_`{|}~.x@b.example>", want: Path{"!#$%&'*+-/=?^_`{|}~.x", "b.example"}},
	{arg: `FROM:<"john doe"@b.example>`, want: Path{`"john doe"`, "b.example"}},
	{arg: `FROM:<"a\"b\\c\ d"@b.example>`, want: Path{`"a\"b\\c\ d"`, "b.example"}},
	{arg: `FROM:<""@b.example>`, want: Path{`""`, "b.example"}},
	{arg: `FROM:<"a>b@c,d:e"@b.example>`, want: Path{`"a>b@c,d:e"`, "b.example"}},
	{arg: "FROM:<Postmaster@b.example>", want: Path{"Postmaster", "b.example"}},
	{arg: "FROM:<@a.example,@b.example:user@c.example>", want: Path{"user", "c.example"}},
	{arg: "FROM:<@a.example:user@c.example> SIZE=1", want: Path{"user", "c.example"}, params: Params{"SIZE": "1"}},
	{arg: "FROM:<a@[192.0.2.1]>", want: Path{"a", "[192.0.2.1]"}},
	{arg: "FROM:<a@[0.0.0.0]>", want: Path{"a", "[0.0.0.0]"}},
	{arg: "FROM:<a@[IPv6:2001:db8::1]>", want: Path{"a", "[IPv6:2001:db8::1]"}},
	{arg: "FROM:<a@[ipv6:2001:DB8::1]>", want: Path{"a", "[ipv6:2001:DB8::1]"}},
	{arg: "FROM:<a@[IPv6:2001:db8:0:0:0:0:0:1]>", want: Path{"a", "[IPv6:2001:db8:0:0:0:0:0:1]"}},
	{arg: "FROM:<a@[IPv6:::ffff:192.0.2.1]>", want: Path{"a", "[IPv6:::ffff:192.0.2.1]"}},
	{arg: "FROM:<a@[IPv6:1:2:3:4:5:6:7::]>", want: Path{"a", "[IPv6:1:2:3:4:5:6:7::]"}}, // erratum 4315
	{arg: "FROM:<a@xn--bcher-kva.example>", want: Path{"a", "xn--bcher-kva.example"}},
	{arg: "FROM:<a@a-b--c.1.example>", want: Path{"a", "a-b--c.1.example"}},
	{arg: "FROM:<a@192.0.2.1>", want: Path{"a", "192.0.2.1"}}, // a Domain of digits
	{arg: "FROM:<a@" + label63 + ".example>", want: Path{"a", label63 + ".example"}},
	{arg: "FROM:<a@localhost>", want: Path{"a", "localhost"}},

	// Limits: at the limit, and 0 meaning none.
	{arg: "FROM:<" + strings.Repeat("l", 64) + "@b.example>", want: Path{strings.Repeat("l", 64), "b.example"}},
	{arg: "FROM:<" + strings.Repeat("ü", 32) + "@b.example>", lim: &utf8Limits, want: Path{strings.Repeat("ü", 32), "b.example"}},
	{arg: "FROM:<a@" + domainOf(255) + ">", lim: &pathLimits{localPart: 64, domain: 255}, want: Path{"a", domainOf(255)}},
	{arg: "FROM:<a@" + domainOf(252) + ">", want: Path{"a", domainOf(252)}}, // path of 256
	{arg: "FROM:<@" + domainOf(200) + ":a@" + domainOf(50) + ">", lim: &pathLimits{path: 256}, want: Path{"a", domainOf(50)}},
	{arg: "FROM:<" + strings.Repeat("l", 1000) + "@" + domainOf(1000) + ">", lim: &pathLimits{}, want: Path{strings.Repeat("l", 1000), domainOf(1000)}},

	// SMTPUTF8 (RFC 6531).
	{arg: "FROM:<ü@b.example>", lim: &utf8Limits, want: Path{"ü", "b.example"}},
	{arg: "FROM:<ü@b.example> SMTPUTF8", want: Path{"ü", "b.example"}, params: Params{"SMTPUTF8": ""}},
	{arg: "FROM:<a@bücher.example> smtputf8", want: Path{"a", "bücher.example"}, params: Params{"SMTPUTF8": ""}},
	{arg: `FROM:<"ü x"@例え.テスト>`, lim: &utf8Limits, want: Path{`"ü x"`, "例え.テスト"}},
	{arg: "FROM:<a@b.example> SMTPUTF8 ENVID=ü", want: Path{"a", "b.example"}, params: Params{"SMTPUTF8": "", "ENVID": "ü"}},

	// Refused: syntax.
	{arg: "", code: 501, enh: "5.1.7"},
	{arg: "FROM", code: 501, enh: "5.1.7"},
	{arg: "FROM:", code: 501, enh: "5.1.7"},
	{arg: "FROM:   ", code: 501, enh: "5.1.7"},
	{arg: "FROM :<a@b.example>", code: 501, enh: "5.1.7"},
	{arg: "TO:<a@b.example>", code: 501, enh: "5.1.7"},
	{arg: "FROM:a@b.example", code: 501, enh: "5.1.7"},
	{arg: "FROM:a@b.example>", code: 501, enh: "5.1.7"},
	{arg: "FROM:<a@b.example", code: 501, enh: "5.1.7"},
	{arg: "FROM:<", code: 501, enh: "5.1.7"},
	{arg: "FROM:<a@b.example>x", code: 501, enh: "5.1.7"},
	{arg: "FROM:<a@b.example>>", code: 501, enh: "5.1.7"},
	{arg: "FROM:<>x", code: 501, enh: "5.1.7"},
	{arg: "FROM:<a@b.example>\tSIZE=1", code: 501, enh: "5.1.7"},
	{arg: "FROM:<<a@b.example>>", code: 501, enh: "5.1.7"},
	{arg: "FROM:\t<a@b.example>", code: 501, enh: "5.1.7"},
	{arg: "FROM:<a>", code: 501, enh: "5.1.7"},
	{arg: "FROM:<Postmaster>", code: 501, enh: "5.1.7"},
	{arg: "FROM:<a@>", code: 501, enh: "5.1.7"},
	{arg: "FROM:<@b.example>", code: 501, enh: "5.1.7"},
	{arg: "FROM:<a@@b.example>", code: 501, enh: "5.1.7"},
	{arg: "FROM:<a@b@c.example>", code: 501, enh: "5.1.7"},
	{arg: "FROM:<.a@b.example>", code: 501, enh: "5.1.7"},
	{arg: "FROM:<a.@b.example>", code: 501, enh: "5.1.7"},
	{arg: "FROM:<a..b@b.example>", code: 501, enh: "5.1.7"},
	{arg: "FROM:<a b@b.example>", code: 501, enh: "5.1.7"},
	{arg: "FROM:<a(b)@b.example>", code: 501, enh: "5.1.7"},
	{arg: `FROM:<a\b@b.example>`, code: 501, enh: "5.1.7"},
	{arg: `FROM:<a"b"@b.example>`, code: 501, enh: "5.1.7"},
	{arg: `FROM:<"a"b@b.example>`, code: 501, enh: "5.1.7"},
	{arg: `FROM:<"a"."b"@b.example>`, code: 501, enh: "5.1.7"},
	{arg: `FROM:<"a@b.example>`, code: 501, enh: "5.1.7"},
	{arg: `FROM:<"a\"@b.example>`, code: 501, enh: "5.1.7"},
	{arg: "FROM:<\"a\tb\"@b.example>", code: 501, enh: "5.1.7"},
	{arg: "FROM:<\"a\\\x01\"@b.example>", code: 501, enh: "5.1.7"},
	{arg: "FROM:<\"a\\ü\"@b.example>", lim: &utf8Limits, code: 501, enh: "5.1.7"}, // quoted-pairSMTP stays ASCII
	{arg: "FROM:<a@-b.example>", code: 501, enh: "5.1.7"},
	{arg: "FROM:<a@b-.example>", code: 501, enh: "5.1.7"},
	{arg: "FROM:<a@b_c.example>", code: 501, enh: "5.1.7"},
	{arg: "FROM:<a@b.example.>", code: 501, enh: "5.1.7"},
	{arg: "FROM:<a@.b.example>", code: 501, enh: "5.1.7"},
	{arg: "FROM:<a@b..example>", code: 501, enh: "5.1.7"},
	{arg: "FROM:<a@b example>", code: 501, enh: "5.1.7"},
	{arg: "FROM:<a@" + label63 + "a.example>", code: 501, enh: "5.1.7"},
	{arg: "FROM:<a@[1.2.3]>", code: 501, enh: "5.1.7"},
	{arg: "FROM:<a@[256.1.1.1]>", code: 501, enh: "5.1.7"},
	{arg: "FROM:<a@[01.2.3.4]>", code: 501, enh: "5.1.7"},
	{arg: "FROM:<a@[1.2.3.4.5]>", code: 501, enh: "5.1.7"},
	{arg: "FROM:<a@[IPv6:1::2::3]>", code: 501, enh: "5.1.7"},
	{arg: "FROM:<a@[IPv6:1:2:3:4:5:6:7:8:9]>", code: 501, enh: "5.1.7"},
	{arg: "FROM:<a@[IPv6:fe80::1%eth0]>", code: 501, enh: "5.1.7"},
	{arg: "FROM:<a@[IPv6:192.0.2.1]>", code: 501, enh: "5.1.7"},
	{arg: "FROM:<a@[IPv6:]>", code: 501, enh: "5.1.7"},
	{arg: "FROM:<a@[::1]>", code: 501, enh: "5.1.7"},
	{arg: "FROM:<a@[]>", code: 501, enh: "5.1.7"},
	{arg: "FROM:<a@[192.0.2.1>", code: 501, enh: "5.1.7"},
	{arg: "FROM:<a@[192.0.2.1]x>", code: 501, enh: "5.1.7"},
	{arg: "FROM:<a@[192.0.2.1]", code: 501, enh: "5.1.7"},
	{arg: "FROM:<a@[ 192.0.2.1]>", code: 501, enh: "5.1.7"},
	// RFC 5321 4.1.3: a General-address-literal needs a tag registered
	// with IANA, and IPv6, the only one, has its own grammar.
	{arg: "FROM:<a@[2001:db8::1]>", code: 501, enh: "5.1.7"},
	{arg: "FROM:<a@[:::]>", code: 501, enh: "5.1.7"},
	{arg: "FROM:<a@[IPv6::::]>", code: 501, enh: "5.1.7"},
	{arg: "FROM:<a@[x-tag:any!thing\"^~]>", code: 501, enh: "5.1.7"},
	{arg: "FROM:<a@[x-tag:a>b]> X=1", code: 501, enh: "5.1.7"},
	{arg: "FROM:<a@[IPv4:192.0.2.1]>", code: 501, enh: "5.1.7"},
	{arg: "FROM:<a@[x-:abc]>", code: 501, enh: "5.1.7"},
	{arg: "FROM:<a@[x_y:abc]>", code: 501, enh: "5.1.7"},
	{arg: "FROM:<a@[tag:]>", code: 501, enh: "5.1.7"},
	{arg: "FROM:<a@[tag:a b]>", code: 501, enh: "5.1.7"},
	{arg: "FROM:<a@[tag:a\\b]>", code: 501, enh: "5.1.7"},
	{arg: "FROM:<a@[tag:ü]>", lim: &utf8Limits, code: 501, enh: "5.1.7"},
	{arg: "FROM:<@a.example,b.example:u@c.example>", code: 501, enh: "5.1.7"},
	{arg: "FROM:<@a.example,:u@c.example>", code: 501, enh: "5.1.7"},
	{arg: "FROM:<@a.example>", code: 501, enh: "5.1.7"},
	{arg: "FROM:<@:u@c.example>", code: 501, enh: "5.1.7"},
	{arg: "FROM:<@a_b:u@c.example>", code: 501, enh: "5.1.7"},
	{arg: "FROM:<@a.example:>", code: 501, enh: "5.1.7"},
	{arg: "FROM:<@a.example", code: 501, enh: "5.1.7"},

	// Refused: UTF-8.
	{arg: "FROM:<ü@b.example>", code: 553, enh: "5.6.7"},
	{arg: "FROM:<a@bücher.example>", code: 553, enh: "5.6.7"},
	{arg: `FROM:<"ü"@b.example>`, code: 553, enh: "5.6.7"},
	{arg: "FROM:<@bücher.example:a@b.example>", code: 553, enh: "5.6.7"},
	{arg: "FROM:<\xff@b.example>", code: 501, enh: "5.1.7"},
	{arg: "FROM:<\xff@b.example>", lim: &utf8Limits, code: 501, enh: "5.1.7"},
	{arg: "FROM:<a@b\xc3.example> SMTPUTF8", code: 501, enh: "5.1.7"},
	{arg: "FROM:<\"\xed\xa0\x80\"@b.example>", lim: &utf8Limits, code: 501, enh: "5.1.7"}, // surrogate
	{arg: "FROM:<\xc0\xaf@b.example>", lim: &utf8Limits, code: 501, enh: "5.1.7"},         // overlong
	{arg: "FROM:<a@b.example> ENVID=ü", code: 501, enh: "5.5.4"},
	{arg: "FROM:<a@b.example> SMTPUTF8 ENVID=\xff", code: 501, enh: "5.5.4"},
	{arg: "FROM:<a@b.example> ü", lim: &utf8Limits, code: 501, enh: "5.5.4"},

	// Refused: limits.
	{arg: "FROM:<" + strings.Repeat("l", 65) + "@b.example>", code: 553, enh: "5.1.7"},
	{arg: "FROM:<ü" + strings.Repeat("l", 63) + "@b.example>", lim: &utf8Limits, code: 553, enh: "5.1.7"},
	{arg: "FROM:<a@" + domainOf(256) + ">", lim: &pathLimits{localPart: 64, domain: 255}, code: 553, enh: "5.1.7"},
	{arg: "FROM:<a@" + domainOf(253) + ">", code: 501, enh: "5.1.7"}, // path of 257
	{arg: "FROM:<@" + domainOf(200) + ":a@" + domainOf(51) + ">", lim: &pathLimits{path: 256}, code: 501, enh: "5.1.7"},

	// Refused: parameters.
	{arg: "FROM:<a@b.example> SIZE=1 size=2", code: 501, enh: "5.5.4"},
	{arg: "FROM:<a@b.example> SMTPUTF8 SMTPUTF8", code: 501, enh: "5.5.4"},
	{arg: "FROM:<a@b.example> -X=1", code: 501, enh: "5.5.4"},
	{arg: "FROM:<a@b.example> SI_ZE=1", code: 501, enh: "5.5.4"},
	{arg: "FROM:<a@b.example> =1", code: 501, enh: "5.5.4"},
	{arg: "FROM:<a@b.example> SIZE=", code: 501, enh: "5.5.4"},
	{arg: "FROM:<a@b.example> SIZE= BODY=7BIT", code: 501, enh: "5.5.4"},
	{arg: "FROM:<a@b.example> X=a=b", code: 501, enh: "5.5.4"},
	{arg: "FROM:<a@b.example> X=a\x01", code: 501, enh: "5.5.4"},
	{arg: "FROM:<a@b.example> X=a\tY=b", code: 501, enh: "5.5.4"},
	{arg: "FROM:<a@b.example> <c@d.example>", code: 501, enh: "5.5.4"},
}

var rcptCases = []pathCase{
	// Accepted.
	{arg: "TO:<a@b.example>", want: Path{"a", "b.example"}},
	{arg: "to:<a@b.example>", want: Path{"a", "b.example"}},
	{arg: "To: <a@b.example> NOTIFY=NEVER ORCPT=rfc822;a@b.example", want: Path{"a", "b.example"}, params: Params{"NOTIFY": "NEVER", "ORCPT": "rfc822;a@b.example"}},
	{arg: "TO:<postmaster>", want: Path{"postmaster", ""}},
	{arg: "TO:<PostMaster> NOTIFY=NEVER", want: Path{"PostMaster", ""}, params: Params{"NOTIFY": "NEVER"}},
	{arg: "TO:<Postmaster@b.example>", want: Path{"Postmaster", "b.example"}},
	{arg: "TO:<@a.example,@b.example:u@c.example>", want: Path{"u", "c.example"}},
	{arg: "TO:<u@[IPv6:::1]>", want: Path{"u", "[IPv6:::1]"}},
	{arg: "TO:<ü@bücher.example>", lim: &utf8Limits, want: Path{"ü", "bücher.example"}},
	{arg: "TO:<a@b.example> X=ü", lim: &utf8Limits, want: Path{"a", "b.example"}, params: Params{"X": "ü"}},
	{arg: "TO:<a@" + domainOf(252) + ">", want: Path{"a", domainOf(252)}},

	// Refused.
	{arg: "TO:<>", code: 501, enh: "5.1.3"},
	{arg: "TO:<> NOTIFY=NEVER", code: 501, enh: "5.1.3"},
	{arg: "TO:<user>", code: 501, enh: "5.1.3"},
	{arg: `TO:<"Postmaster">`, code: 501, enh: "5.1.3"},
	{arg: "TO:<@a.example:Postmaster>", code: 501, enh: "5.1.3"},
	{arg: "TO:<Poſtmaster>", lim: &utf8Limits, code: 501, enh: "5.1.3"}, // long s: ASCII case folding only
	{arg: "FROM:<a@b.example>", code: 501, enh: "5.1.3"},
	{arg: "TO:a@b.example", code: 501, enh: "5.1.3"},
	{arg: "TO:<a@b.example>junk", code: 501, enh: "5.1.3"},
	{arg: "TO:<a@[1.2.3]>", code: 501, enh: "5.1.3"},
	{arg: "TO:<a@[2001:db8::1]>", code: 501, enh: "5.1.3"},
	{arg: "TO:<a@[IPv6:1:2:3:4:5:6:7:8:9]>", code: 501, enh: "5.1.3"},
	{arg: "TO:<ü@b.example>", code: 553, enh: "5.6.7"},
	{arg: "TO:<ü@b.example> SMTPUTF8", code: 553, enh: "5.6.7"}, // only MAIL declares it
	{arg: "TO:<a@b.example> X=ü", code: 501, enh: "5.5.4"},
	{arg: "TO:<\xff@b.example>", lim: &utf8Limits, code: 501, enh: "5.1.3"},
	{arg: "TO:<" + strings.Repeat("l", 65) + "@b.example>", code: 553, enh: "5.1.3"},
	{arg: "TO:<a@" + domainOf(256) + ">", lim: &pathLimits{domain: 255}, code: 553, enh: "5.1.3"},
	{arg: "TO:<a@" + domainOf(253) + ">", code: 501, enh: "5.1.3"},
	{arg: "TO:<a@" + domainOf(256) + ">", code: 501, enh: "5.1.3"}, // path before domain
	{arg: "TO:<" + strings.Repeat("l", 65) + "@" + domainOf(256) + ">", lim: &pathLimits{localPart: 64, domain: 255}, code: 553, enh: "5.1.3"},
	{arg: "TO:<a@b.example> NOTIFY=NEVER notify=SUCCESS", code: 501, enh: "5.5.4"},
	{arg: "TO:<a@b.example> NOTIFY=", code: 501, enh: "5.5.4"},
}

func TestParseMailArg(t *testing.T) {
	testPathCases(t, "parseMailArg", parseMailArg, mailCases)
}

func TestParseRcptArg(t *testing.T) {
	testPathCases(t, "parseRcptArg", parseRcptArg, rcptCases)
}

func testPathCases(t *testing.T, name string, parse func(string, pathLimits) (Path, Params, error), cases []pathCase) {
	t.Helper()
	for _, tc := range cases {
		lim := rfcLimits
		if tc.lim != nil {
			lim = *tc.lim
		}
		p, params, err := parse(tc.arg, lim)
		if tc.code == 0 {
			if err != nil {
				t.Errorf("%s(%q) = error %v, want %+v", name, tc.arg, err, tc.want)
				continue
			}
			if p != tc.want || !reflect.DeepEqual(params, tc.params) {
				t.Errorf("%s(%q) = %+v, %v, want %+v, %v", name, tc.arg, p, params, tc.want, tc.params)
			}
			continue
		}
		var r *Reply
		if !errors.As(err, &r) {
			t.Errorf("%s(%q) = %+v, %v, %v; want reply %d %s", name, tc.arg, p, params, err, tc.code, tc.enh)
			continue
		}
		if r.Code != tc.code || r.Enhanced != tc.enh {
			t.Errorf("%s(%q) = %d %s %q, want %d %s", name, tc.arg, r.Code, r.Enhanced, r.Text, tc.code, tc.enh)
		}
		if p != (Path{}) || params != nil {
			t.Errorf("%s(%q) returned %+v, %v with its error", name, tc.arg, p, params)
		}
		// Reply text never echoes the address.
		if strings.ContainsAny(r.Text, "@\"") || hasNonASCII(r.Text) {
			t.Errorf("%s(%q) reply text %q quotes the input", name, tc.arg, r.Text)
		}
	}
}

func TestPathReplyTexts(t *testing.T) {
	for _, tc := range []struct {
		arg, text string
		lim       pathLimits
	}{
		{"FROM:a@b.example", "Syntax error in reverse-path: missing angle brackets", rfcLimits},
		{"FROM:<" + strings.Repeat("l", 65) + "@b.example>", "Mailbox name not allowed: local-part too long", rfcLimits},
		{"FROM:<a@" + domainOf(256) + ">", "Mailbox name not allowed: domain too long", pathLimits{domain: 255}},
		{"FROM:<a@" + domainOf(253) + ">", "Path too long", rfcLimits},
		{"FROM:<ü@b.example>", "Non-ASCII address requires SMTPUTF8", rfcLimits},
		{"FROM:<> A=1 a=2", "Duplicate parameter", rfcLimits},
		{"FROM:<> A=", "Syntax error in parameters", rfcLimits},
	} {
		_, _, err := parseMailArg(tc.arg, tc.lim)
		if err == nil || err.(*Reply).Text != tc.text {
			t.Errorf("parseMailArg(%q) = %v, want text %q", tc.arg, err, tc.text)
		}
	}
	_, _, err := parseRcptArg("TO:<>", rfcLimits)
	if want := "Syntax error in forward-path: null path not allowed"; err == nil || err.(*Reply).Text != want {
		t.Errorf("parseRcptArg(TO:<>) = %v, want text %q", err, want)
	}
}

func TestPathString(t *testing.T) {
	for _, tc := range []struct {
		p      Path
		s      string
		isNull bool
	}{
		{Path{}, "", true},
		{Path{"a", "b.example"}, "a@b.example", false},
		{Path{"Postmaster", ""}, "Postmaster", false},
		{Path{`""`, "[192.0.2.1]"}, `""@[192.0.2.1]`, false},
	} {
		if got := tc.p.String(); got != tc.s {
			t.Errorf("%+v.String() = %q, want %q", tc.p, got, tc.s)
		}
		if got := tc.p.IsNull(); got != tc.isNull {
			t.Errorf("%+v.IsNull() = %v, want %v", tc.p, got, tc.isNull)
		}
	}
}

func TestParseParams(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Params
		code int
	}{
		{in: "", want: nil},
		{in: "   ", want: nil},
		{in: "A", want: Params{"A": ""}},
		{in: " a-b=c ", want: Params{"A-B": "c"}},
		{in: "1X=y Z-=!~", want: Params{"1X": "y", "Z-": "!~"}},
		{in: "X=<a@b.example>;+", want: Params{"X": "<a@b.example>;+"}},
		{in: "A B C", want: Params{"A": "", "B": "", "C": ""}},
		{in: "A a", code: 501},
		{in: "A=1 a", code: 501},
		{in: "-A", code: 501},
		{in: "A_B", code: 501},
		{in: "A=", code: 501},
		{in: "A==", code: 501},
		{in: "A=b=c", code: 501},
		{in: "A=\x7f", code: 501},
		{in: "A=ü", code: 501}, // parseParams is ASCII only
		{in: "A\tB", code: 501},
		{in: "ü", code: 501},
	} {
		got, err := parseParams(tc.in)
		if tc.code == 0 {
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Errorf("parseParams(%q) = %v, %v, want %v", tc.in, got, err, tc.want)
			}
			continue
		}
		r, ok := err.(*Reply)
		if !ok || r.Code != tc.code || r.Enhanced != "5.5.4" || got != nil {
			t.Errorf("parseParams(%q) = %v, %v, want %d 5.5.4", tc.in, got, err, tc.code)
		}
	}
}

func TestParseHelloArg(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"mail.example", "mail.example", true},
		{"localhost", "localhost", true},
		{"Mail-1.Example", "Mail-1.Example", true},
		{"mail.example  ", "mail.example", true},
		{"[192.0.2.1]", "[192.0.2.1]", true},
		{"[IPv6:2001:db8::1]", "[IPv6:2001:db8::1]", true},
		{"xn--bcher-kva.example", "xn--bcher-kva.example", true},
		{domainOf(255), domainOf(255), true},
		{"", "", false},
		{"   ", "", false},
		{" mail.example", "", false},
		{"mail.example extra words", "", false},
		{"mail.example\t", "", false},
		{"mail_server.example", "", false},
		{"-mail.example", "", false},
		{"mail.example.", "", false},
		{"bücher.example", "", false}, // RFC 6531 3.7.1: A-labels only
		{"[1.2.3]", "", false},
		{"[IPv6:1::2::3]", "", false},
		{"[x-tag:abc]", "", false},
		{"[2001:db8::1]", "", false},
		{"192.0.2.1]", "", false},
		{domainOf(256), "", false},
		{"\xff", "", false},
	} {
		got, err := parseHelloArg(tc.in)
		if tc.ok {
			if err != nil || got != tc.want {
				t.Errorf("parseHelloArg(%q) = %q, %v, want %q", tc.in, got, err, tc.want)
			}
			continue
		}
		r, ok := err.(*Reply)
		if !ok || r.Code != 501 || r.Enhanced != "5.5.4" || got != "" {
			t.Errorf("parseHelloArg(%q) = %q, %v, want 501 5.5.4", tc.in, got, err)
		}
	}
}

func TestIsDomain(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want bool
	}{
		{"a", true},
		{"a.b", true},
		{"1", true},
		{"a-1.b-2", true},
		{label63, true},
		{label63 + "." + label63, true},
		{"bücher.example", true}, // U-label, RFC 6531 3.3
		{"", false},
		{".", false},
		{"a.", false},
		{".a", false},
		{"a..b", false},
		{"-a", false},
		{"a-", false},
		{"a_b", false},
		{"a b", false},
		{label63 + "a", false},
		{"[192.0.2.1]", false},
		{"a\xffb", false},
	} {
		if got := isDomain(tc.in); got != tc.want {
			t.Errorf("isDomain(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestIsAddressLiteral(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want bool
	}{
		{"[192.0.2.1]", true},
		{"[255.255.255.255]", true},
		{"[IPv6:::]", true},
		{"[IPV6:::1]", true},
		{"[IPv6:2001:db8:1:2:3:4:5:6]", true},
		{"[IPv6:2001:db8::192.0.2.1]", true},
		{"[192.0.2.1", false},
		{"192.0.2.1", false},
		{"[]", false},
		{"[1.2.3]", false},
		{"[256.1.1.1]", false},
		{"[01.2.3.4]", false},
		{"[1.2.3.04]", false},
		{"[1.2.3.4 ]", false},
		{"[IPv6:1::2::3]", false},
		{"[IPv6:12345::1]", false},
		{"[IPv6:2001:db8::01.2.3.4]", false},
		{"[IPv6:::1%1]", false},
		{"[IPv6:1.2.3.4]", false},
		{"[IPv6::1]", false},
		// No General-address-literal: no tag but IPv6 is registered
		// (RFC 5321 4.1.3), so these are malformed.
		{"[tag:value]", false},
		{"[1:2]", false},
		{"[-x:y]", false},
		{"[2001:db8::1]", false},
		{"[::1]", false},
		{"[:::]", false},
		{"[IPv6::::]", false},
		{"[IPv6:1:2:3:4:5:6:7:8:9]", false},
		{"[IPv4:192.0.2.1]", false},
		{"[:x]", false},
		{"[x:]", false},
		{"[x-:y]", false},
		{"[x:[]", false},
		{"[x:y]z]", false},
	} {
		if got := isAddressLiteral(tc.in); got != tc.want {
			t.Errorf("isAddressLiteral(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

// TestParsePathAllocs guards the claim that a well-formed command without
// parameters costs no allocation.
func TestParsePathAllocs(t *testing.T) {
	allocs := testing.AllocsPerRun(100, func() {
		parseMailArg("FROM:<@r.example:\"a b\"@[IPv6:2001:db8::1]>", rfcLimits)
		parseRcptArg("TO:<user@mail.example>", rfcLimits)
		parseHelloArg("client.example")
	})
	if allocs != 0 {
		t.Errorf("parsing allocates %v times, want 0", allocs)
	}
}

// Fuzz targets. Each checks invariants that hold for any input: no panic,
// errors are *Reply values from a fixed set of codes, and what is accepted
// is within the limits, round-trips and consists of what was sent.

var fuzzSeeds = []string{
	"FROM:<a@b.example>",
	"FROM:<> SIZE=10 BODY=8BITMIME",
	"from: <\"a\\\"b c\"@[IPv6:2001:db8::1]> SMTPUTF8",
	"FROM:<@a.example,@b.example:user@c.example>",
	"FROM:<ü@bücher.example> SMTPUTF8",
	"FROM:<a@[192.0.2.1]> AUTH=<>",
	"FROM:<a@[x-tag:a>b]>",
	"FROM:<a@[2001:db8::1]>",
	"FROM:<\xff@b.example>",
	"TO:<Postmaster>",
	"TO:<a@b.example> NOTIFY=NEVER ORCPT=rfc822;a@b.example",
	"TO:<>",
	"FROM:<a@b.example> X=1 x=2",
}

func FuzzParseMailArg(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, arg string, utf8ok bool) {
		lim := rfcLimits
		lim.utf8 = utf8ok
		p, params, err := parseMailArg(arg, lim)
		checkPathResult(t, arg, lim, p, params, err, false)
	})
}

func FuzzParseRcptArg(f *testing.F) {
	for _, s := range fuzzSeeds {
		s = strings.Replace(strings.Replace(s, "FROM:", "TO:", 1), "from:", "to:", 1)
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, arg string, utf8ok bool) {
		lim := rfcLimits
		lim.utf8 = utf8ok
		p, params, err := parseRcptArg(arg, lim)
		checkPathResult(t, arg, lim, p, params, err, true)
	})
}

// checkPathResult checks what parseMailArg (rcpt false) or parseRcptArg
// returned for arg.
func checkPathResult(t *testing.T, arg string, lim pathLimits, p Path, params Params, err error, rcpt bool) {
	t.Helper()
	prefix, enh := "FROM:", "5.1.7"
	parse := parseMailArg
	if rcpt {
		prefix, enh, parse = "TO:", "5.1.3", parseRcptArg
	}
	if err != nil {
		r, ok := err.(*Reply)
		if !ok {
			t.Fatalf("error %T %v is not a *Reply", err, err)
		}
		switch {
		case r.Code == 501 && (r.Enhanced == enh || r.Enhanced == "5.5.4"):
		case r.Code == 553 && (r.Enhanced == enh || r.Enhanced == "5.6.7"):
		default:
			t.Fatalf("unexpected reply %d %s %q", r.Code, r.Enhanced, r.Text)
		}
		if hasNonASCII(r.Text) || strings.ContainsAny(r.Text, "@\"\r\n") {
			t.Fatalf("reply text %q may quote the input", r.Text)
		}
		if p != (Path{}) || params != nil {
			t.Fatalf("returned %+v, %v with error %v", p, params, err)
		}
		return
	}

	if len(p.LocalPart) > lim.localPart || len(p.Domain) > lim.domain || len(p.String())+2 > lim.path {
		t.Fatalf("%+v exceeds the limits", p)
	}
	if !strings.Contains(arg, p.LocalPart) || !strings.Contains(arg, p.Domain) {
		t.Fatalf("%+v is not what was sent in %q", p, arg)
	}
	switch {
	case p.IsNull():
		if rcpt {
			t.Fatalf("RCPT accepted the null path")
		}
	case p.Domain == "":
		if !rcpt || len(p.LocalPart) != len("postmaster") || strings.ToLower(p.LocalPart) != "postmaster" {
			t.Fatalf("%+v has no domain", p)
		}
	default:
		if !isDomain(p.Domain) && !isAddressLiteral(p.Domain) {
			t.Fatalf("%+v: domain is neither a Domain nor an address-literal", p)
		}
		// RFC 5321 4.1.3: an address literal holds an IPv4 address, or
		// the tag IPv6 and an IPv6 address; no other tag is registered.
		if lit, ok := strings.CutPrefix(p.Domain, "["); ok {
			lit = strings.TrimSuffix(lit, "]")
			ip, err := netip.ParseAddr(lit)
			if tag, v, tagged := strings.Cut(lit, ":"); tagged {
				ip, err = netip.ParseAddr(v)
				if !strings.EqualFold(tag, "IPv6") || err != nil || !ip.Is6() {
					t.Fatalf("%+v: not an IPv6 literal", p)
				}
			} else if err != nil || !ip.Is4() {
				t.Fatalf("%+v: not an IPv4 literal", p)
			}
		}
	}
	if _, declared := params["SMTPUTF8"]; !lim.utf8 && (rcpt || !declared) && hasNonASCII(p.String()) {
		t.Fatalf("%+v: non-ASCII accepted without SMTPUTF8", p)
	}

	// The path without its source route and parameters parses the same.
	lim.utf8 = true
	q, qparams, err := parse(prefix+"<"+p.String()+">", lim)
	if err != nil || q != p || qparams != nil {
		t.Fatalf("%+v re-parses as %+v, %v, %v", p, q, qparams, err)
	}

	// The parameters, written back, parse the same.
	var b strings.Builder
	for k, v := range params {
		if k != strings.ToUpper(k) || strings.ContainsAny(v, " =") {
			t.Fatalf("bad parameter %q=%q", k, v)
		}
		b.WriteString(" " + k)
		if v != "" {
			b.WriteString("=" + v)
		}
	}
	if again, err := parseParamList(b.String(), true); err != nil || !reflect.DeepEqual(again, params) {
		t.Fatalf("parameters %v re-parse as %v, %v", params, again, err)
	}
}

func FuzzParseHelloArg(f *testing.F) {
	for _, s := range []string{
		"mail.example", "mail.example  ", "[192.0.2.1]", "[IPv6:::ffff:192.0.2.1]",
		"[x-tag:abc]", "mail.example junk", "bücher.example", "-a.example",
		"[1.2.3]", "a..b", "\xff", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, arg string) {
		d, err := parseHelloArg(arg)
		if err != nil {
			if r, ok := err.(*Reply); !ok || r.Code != 501 || r.Enhanced != "5.5.4" || d != "" {
				t.Fatalf("parseHelloArg(%q) = %q, %v", arg, d, err)
			}
			return
		}
		if d != strings.TrimRight(arg, " ") || d == "" || len(d) > 255 || hasNonASCII(d) {
			t.Fatalf("parseHelloArg(%q) = %q", arg, d)
		}
		if again, err := parseHelloArg(d); err != nil || again != d {
			t.Fatalf("parseHelloArg(%q) = %q, %v on the second pass", d, again, err)
		}
		// What names a client names a mailbox's domain too.
		if p, _, err := parseRcptArg("TO:<a@"+d+">", pathLimits{}); err != nil || p.Domain != d {
			t.Fatalf("domain %q of HELO is refused in a path: %v", d, err)
		}
	})
}

// parseParams is parseParamList for ASCII-only values, as MAIL and RCPT
// parse them without SMTPUTF8.
func parseParams(s string) (Params, error) {
	return parseParamList(s, false)
}
