package smtpd

// The argument grammar of MAIL, RCPT and HELO/EHLO: RFC 5321 4.1.2 and
// 4.1.3, with the IPv6 literal of erratum 4315 (RFC 4291 text form, as
// net/netip parses it), no General-address-literal (no tag but IPv6 is
// registered) and the UTF-8 extensions of RFC 6531 3.3.
//
// The parsers scan the string by index and return substrings of it, so a
// well-formed command costs no allocation beyond the Params map.

import (
	"net/netip"
	"strings"
	"unicode/utf8"
)

// Path is a reverse-path or forward-path (RFC 5321 4.1.2) without its angle
// brackets. A source route ("<@a.example,@b.example:user@c.example>") is
// checked and dropped: RFC 5321 4.1.1.3 and Appendix C tell servers to
// accept it and ignore it.
//
// The zero Path is the null reverse-path "<>" that bounces use
// (RFC 5321 4.5.5).
type Path struct {
	// LocalPart is the local-part exactly as sent: a Quoted-string keeps
	// its quotes and backslashes. It is not case-folded either, since only
	// the receiving host may interpret it (RFC 5321 2.4).
	LocalPart string

	// Domain is the domain or address-literal exactly as sent, brackets
	// included ("[192.0.2.1]"). It is empty only for the null path and for
	// the recipient "<Postmaster>" (RFC 5321 4.1.1.3).
	Domain string
}

// IsNull reports whether p is the null reverse-path "<>".
func (p Path) IsNull() bool { return p.LocalPart == "" && p.Domain == "" }

// String returns p as it appears between the angle brackets: "" for the
// null path, the local-part alone for "<Postmaster>", and
// LocalPart "@" Domain otherwise.
func (p Path) String() string {
	if p.Domain == "" {
		return p.LocalPart
	}
	return p.LocalPart + "@" + p.Domain
}

// Params holds the ESMTP parameters of a MAIL or RCPT command
// (RFC 5321 4.1.2 Mail-parameters, Rcpt-parameters), keyed by keyword in
// upper case, since keywords are case-insensitive (RFC 5321 2.4). A keyword
// sent without "=value" maps to "". A nil Params means none were sent.
type Params map[string]string

// pathLimits are the size limits of RFC 5321 4.5.3.1, in octets, 0 meaning
// no limit, and whether UTF-8 addresses are allowed.
type pathLimits struct {
	localPart int // 4.5.3.1.1: 64
	domain    int // 4.5.3.1.2: 255
	path      int // 4.5.3.1.3: 256, counting "<", ">" and any source route

	// utf8 is set when the transaction declared SMTPUTF8 (RFC 6531 3.4).
	// A MAIL command declares it itself: its SMTPUTF8 parameter enables
	// UTF-8 for its own reverse-path, so parseMailArg's caller may leave
	// utf8 unset and must still refuse SMTPUTF8 when it is not offered.
	utf8 bool
}

// Replies shared by both commands. None of them quotes the client's input:
// the client knows what it sent, and reply text is no place for
// attacker-chosen bytes.
var (
	replyParamSyntax    = &Reply{Code: 501, Enhanced: "5.5.4", Text: "Syntax error in parameters"}
	replyParamDuplicate = &Reply{Code: 501, Enhanced: "5.5.4", Text: "Duplicate parameter"}
	// RFC 6531 3.5 and X.6.7 of its section 4.2.
	replyPathNonASCII = &Reply{Code: 553, Enhanced: "5.6.7", Text: "Non-ASCII address requires SMTPUTF8"}
	replyHelloSyntax  = &Reply{Code: 501, Enhanced: "5.5.4", Text: "Syntax error: HELO/EHLO needs a domain or address literal"}
)

// parseMailArg parses what follows "MAIL ": "FROM:" Reverse-path
// [SP Mail-parameters] (RFC 5321 4.1.1.2). The null path "<>" gives Path{}.
func parseMailArg(arg string, lim pathLimits) (Path, Params, error) {
	return parsePathArg(arg, false, lim)
}

// parseRcptArg parses what follows "RCPT ": "TO:" Forward-path
// [SP Rcpt-parameters] (RFC 5321 4.1.1.3), where "<Postmaster>" without a
// domain is also allowed and "<>" is not.
func parseRcptArg(arg string, lim pathLimits) (Path, Params, error) {
	return parsePathArg(arg, true, lim)
}

// parsePathArg is parseMailArg when rcpt is false and parseRcptArg when it
// is true. Checks run from syntax to policy: the grammar, the parameters,
// non-ASCII octets, then the size limits.
func parsePathArg(arg string, rcpt bool, lim pathLimits) (Path, Params, error) {
	// RFC 3463: X.1.7 is a bad sender address syntax, X.1.3 a bad
	// destination address syntax.
	prefix, what, enhanced := "FROM:", "reverse-path", "5.1.7"
	if rcpt {
		prefix, what, enhanced = "TO:", "forward-path", "5.1.3"
	}
	syntaxError := func(reason string) error {
		return &Reply{Code: 501, Enhanced: enhanced, Text: "Syntax error in " + what + ": " + reason}
	}

	// RFC 5321 2.4: "FROM:" and "TO:" are case-insensitive.
	if len(arg) < len(prefix) || !equalFoldASCII(arg[:len(prefix)], prefix) {
		return Path{}, nil, syntaxError("expected " + prefix + "<address>")
	}
	// The grammar has no space after the colon, but many clients send one
	// and it is unambiguous, so it is the one leniency here.
	s := strings.TrimLeft(arg[len(prefix):], " ")

	p, n, reason := scanPath(s, rcpt)
	if reason != "" {
		return Path{}, nil, syntaxError(reason)
	}
	rest := s[n:]
	if rest != "" && rest[0] != ' ' {
		return Path{}, nil, syntaxError("unexpected text after path")
	}
	params, err := parseParamList(rest, true)
	if err != nil {
		return Path{}, nil, err
	}

	// RFC 6531 3.4: the SMTPUTF8 parameter of MAIL declares UTF-8 for the
	// transaction, this reverse-path included.
	utf8ok := lim.utf8
	if _, ok := params["SMTPUTF8"]; ok && !rcpt {
		utf8ok = true
	}
	if !utf8ok {
		if hasNonASCII(s[:n]) {
			return Path{}, nil, replyPathNonASCII
		}
		if hasNonASCII(rest) {
			return Path{}, nil, replyParamSyntax
		}
	}

	if err := lim.check(p, n, enhanced); err != nil {
		return Path{}, nil, err
	}
	return p, params, nil
}

// check applies the size limits to p, a path of n octets: the whole path
// first, then its parts. RFC 5321 4.5.3.1.10 gives "501 Path too long",
// and a part over its own limit is a mailbox name the server does not
// allow (553). With the RFC's limits a domain over 255 octets always
// makes the path too long.
func (lim pathLimits) check(p Path, n int, enhanced string) error {
	switch {
	case lim.path > 0 && n > lim.path:
		return &Reply{Code: 501, Enhanced: enhanced, Text: "Path too long"}
	case lim.localPart > 0 && len(p.LocalPart) > lim.localPart:
		return &Reply{Code: 553, Enhanced: enhanced, Text: "Mailbox name not allowed: local-part too long"}
	case lim.domain > 0 && len(p.Domain) > lim.domain:
		return &Reply{Code: 553, Enhanced: enhanced, Text: "Mailbox name not allowed: domain too long"}
	}
	return nil
}

// scanPath parses the Path (or "<>" when rcpt is false, "<Postmaster>" when
// it is true) at the start of s. It returns the path, the number of octets
// it took, "<" and ">" included, and on failure a short reason instead.
// Non-ASCII is accepted wherever RFC 6531 3.3 allows it; the caller decides
// whether the session allows it.
func scanPath(s string, rcpt bool) (p Path, n int, reason string) {
	if s == "" {
		return Path{}, 0, "missing address"
	}
	if s[0] != '<' {
		return Path{}, 0, "missing angle brackets"
	}
	i := 1
	if strings.HasPrefix(s[i:], ">") {
		if rcpt {
			return Path{}, 0, "null path not allowed"
		}
		return Path{}, 2, "" // Reverse-path = Path / "<>"
	}

	// Path = "<" [ A-d-l ":" ] Mailbox ">"
	route := i < len(s) && s[i] == '@'
	if i = scanRoute(s, i); i < 0 {
		return Path{}, 0, "invalid source route"
	}

	// Mailbox = Local-part "@" ( Domain / address-literal )
	// Local-part = Dot-string / Quoted-string
	start := i
	if i = scanLocalPart(s, i); i < 0 {
		return Path{}, 0, "invalid local-part"
	}
	local := s[start:i]
	if i == len(s) {
		return Path{}, 0, "missing closing angle bracket"
	}
	if s[i] == '>' {
		// RFC 5321 4.1.1.3: RCPT TO:<Postmaster> needs no domain, and
		// 4.5.1: "Postmaster" is case-insensitive.
		if rcpt && !route && equalFoldASCII(local, "postmaster") {
			return Path{LocalPart: local}, i + 1, ""
		}
		return Path{}, 0, "missing domain"
	}
	if s[i] != '@' {
		return Path{}, 0, "invalid local-part"
	}
	i++
	end, reason := scanDomainPart(s, i)
	if reason != "" {
		return Path{}, 0, reason
	}
	return Path{LocalPart: local, Domain: s[i:end]}, end + 1, ""
}

// scanRoute skips a source route, A-d-l ":" (RFC 5321 4.1.2), at s[i],
// and returns the index after it: i when there is none, -1 when it is
// invalid. A-d-l = At-domain *( "," At-domain ); At-domain = "@" Domain.
// The server ignores the route (RFC 5321 4.1.1.2, appendix C).
func scanRoute(s string, i int) int {
	for i < len(s) && s[i] == '@' {
		j := i + 1
		for j < len(s) && s[j] != ',' && s[j] != ':' && s[j] != '>' {
			j++
		}
		if j == len(s) || s[j] == '>' || !isDomain(s[i+1:j]) {
			return -1
		}
		i = j + 1
		if s[j] == ':' {
			break
		}
		if i == len(s) || s[i] != '@' { // "," must be followed by At-domain
			return -1
		}
	}
	return i
}

// scanDomainPart scans the part of a Mailbox after its "@", Domain or
// address-literal (RFC 5321 4.1.2), and the ">" that must end the path,
// at s[i]. It returns the index of the ">", or a reason.
func scanDomainPart(s string, i int) (end int, reason string) {
	if i < len(s) && s[i] == '[' {
		// No form of address-literal contains "]", so the first one ends it.
		j := strings.IndexByte(s[i:], ']')
		if j < 0 || !isAddressLiteral(s[i:i+j+1]) {
			return 0, "invalid address literal"
		}
		i += j + 1
	} else {
		// A Domain never contains ">", so the first one ends it.
		j := strings.IndexByte(s[i:], '>')
		if j < 0 {
			return 0, "missing closing angle bracket"
		}
		if !isDomain(s[i : i+j]) {
			return 0, "invalid domain"
		}
		i += j
	}
	if i == len(s) || s[i] != '>' {
		return 0, "missing closing angle bracket"
	}
	return i, ""
}

// scanLocalPart scans Local-part = Dot-string / Quoted-string from s[i]
// and returns the index after it, or -1.
func scanLocalPart(s string, i int) int {
	if i < len(s) && s[i] == '"' {
		// Quoted-string = DQUOTE *QcontentSMTP DQUOTE
		for i++; i < len(s); {
			switch c := s[i]; {
			case c == '"':
				return i + 1
			case c == '\\':
				// quoted-pairSMTP = %d92 %d32-126
				if i+1 == len(s) || s[i+1] < ' ' || s[i+1] > '~' {
					return -1
				}
				i += 2
			case c >= ' ' && c <= '~':
				i++ // qtextSMTP = %d32-33 / %d35-91 / %d93-126
			default:
				i = skipUTF8(s, i) // RFC 6531 3.3: qtextSMTP =/ UTF8-non-ascii
				if i < 0 {
					return -1
				}
			}
		}
		return -1
	}
	// Dot-string = Atom *("." Atom), Atom = 1*atext
	for atom := i; ; {
		switch {
		case i < len(s) && isAtext(s[i]):
			i++
		case i < len(s) && s[i] >= utf8.RuneSelf:
			i = skipUTF8(s, i) // RFC 6531 3.3: atext =/ UTF8-non-ascii
			if i < 0 {
				return -1
			}
		case i == atom:
			return -1 // an empty atom: a leading, trailing or doubled "."
		case i < len(s) && s[i] == '.':
			i++
			atom = i
		default:
			return i
		}
	}
}

// isDomain reports whether s is a Domain = sub-domain *("." sub-domain).
// It accepts U-labels (RFC 6531 3.3); callers that need ASCII check for
// it themselves. No trailing dot: the grammar has none.
func isDomain(s string) bool {
	for {
		label, rest, more := strings.Cut(s, ".")
		if !isSubDomain(label) {
			return false
		}
		if !more {
			return true
		}
		s = rest
	}
}

// isSubDomain reports whether s is a sub-domain = Let-dig [Ldh-str], with
// Ldh-str = *( ALPHA / DIGIT / "-" ) Let-dig: letters, digits and inner
// hyphens, or a U-label, which is here any valid UTF-8 taking the place of
// letters. RFC 1035 2.3.4 limits a label to 63 octets.
func isSubDomain(s string) bool {
	if s == "" || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); {
		if isLetDig(s[i]) || s[i] == '-' {
			i++
		} else if i = skipUTF8(s, i); i < 0 {
			return false
		}
	}
	return true
}

// isAddressLiteral reports whether s is an address-literal of
// RFC 5321 4.1.3, brackets included: an IPv4 dotted quad, or "IPv6:" and
// an IPv6 address. The grammar's third form, General-address-literal, is
// Standardized-tag ":" value, and "Standardized-tag MUST be specified in a
// Standards-Track RFC and registered with IANA"; the IANA registry
// (Address Literal Tags) lists IPv6 alone, which has its own grammar, so
// any other tag is malformed. So is an IPv6 address without its tag
// ("[2001:db8::1]", which would read as the tag "2001").
func isAddressLiteral(s string) bool {
	if len(s) < 3 || s[0] != '[' || s[len(s)-1] != ']' {
		return false
	}
	s = s[1 : len(s)-1]
	tag, value, tagged := strings.Cut(s, ":")
	if !tagged {
		// IPv4-address-literal = Snum 3("." Snum). net/netip refuses
		// leading zeros, which some parsers read as octal.
		ip, err := netip.ParseAddr(s)
		return err == nil && ip.Is4()
	}
	if !equalFoldASCII(tag, "IPv6") { // case-insensitive, RFC 5321 2.4
		return false
	}
	// IPv6-address-literal = "IPv6:" IPv6-addr, in the RFC 4291 form
	// erratum 4315 asks for; an IPv4 tail is fine, a zone is not.
	ip, err := netip.ParseAddr(value)
	return err == nil && ip.Is6() && ip.Zone() == ""
}

// isLetDig reports whether c is a Let-dig = ALPHA / DIGIT.
func isLetDig(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// isAtext reports whether c is an ASCII atext of RFC 5322 3.2.3.
func isAtext(c byte) bool {
	return isLetDig(c) || strings.IndexByte("!#$%&'*+-/=?^_`{|}~", c) >= 0
}

// equalFoldASCII reports whether s and t are equal ignoring ASCII case.
// Keywords are case-insensitive in ASCII only (RFC 5321 2.4);
// strings.EqualFold would also take "Poſtmaster", with a long s, for
// "Postmaster".
func equalFoldASCII(s, t string) bool {
	if len(s) != len(t) {
		return false
	}
	for i := 0; i < len(s); i++ {
		a, b := s[i], t[i]
		if 'A' <= a && a <= 'Z' {
			a += 'a' - 'A'
		}
		if 'A' <= b && b <= 'Z' {
			b += 'a' - 'A'
		}
		if a != b {
			return false
		}
	}
	return true
}

// skipUTF8 returns the index after the UTF8-non-ascii character
// (RFC 6532 3.1, RFC 3629 4) at s[i], or -1 when there is none: an ASCII
// octet or invalid UTF-8.
func skipUTF8(s string, i int) int {
	r, n := utf8.DecodeRuneInString(s[i:])
	if r < utf8.RuneSelf || r == utf8.RuneError && n <= 1 {
		return -1
	}
	return i + n
}

// hasNonASCII reports whether s holds an octet above 127.
func hasNonASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return true
		}
	}
	return false
}
