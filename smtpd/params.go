package smtpd

import (
	"math"
	"strconv"
	"strings"
)

// The MAIL and RCPT parameters of the extensions the server offers: SIZE
// (RFC 1870), BODY (RFC 6152, RFC 3030), SMTPUTF8 (RFC 6531), AUTH
// (RFC 4954), and RET, ENVID, NOTIFY, ORCPT (DSN, RFC 3461). Each is checked
// here and its value put into the envelope; any other parameter is 555
// (RFC 5321 4.1.1.11). Parameters need EHLO: after HELO none is known.

var (
	replyBinaryNeedsBDAT = &Reply{Code: 503, Enhanced: "5.5.1", Text: "BODY=BINARYMIME requires BDAT"}
)

// mailParams checks the MAIL parameters and records them in env. Unknown
// parameters are looked for first and the others checked in a fixed order,
// so that the reply does not depend on the order of a map.
func (c *conn) mailParams(env *Envelope, params Params) *Reply {
	for k := range params {
		known := k == "SIZE" || k == "BODY" || k == "SMTPUTF8" || k == "RET" || k == "ENVID" ||
			k == "AUTH" && len(c.srv.authMechanisms()) > 0 // RFC 4954 5: only where AUTH is offered
		if !c.esmtp || !known {
			return replyUnknownParam
		}
	}
	if v, ok := params["SIZE"]; ok {
		// RFC 1870 5: SIZE=size-value, 1 to 20 digits.
		size, ok := parseDigits(v, 20)
		if !ok {
			return replyParamSyntax
		}
		if limit := limitOf(c.srv.MaxMessageBytes, DefaultMaxMessageBytes); limit > 0 && size > uint64(limit) {
			return replySizeTooBig
		}
	}
	if v, ok := params["BODY"]; ok {
		// RFC 6152 2 and RFC 3030 3.
		env.Body = strings.ToUpper(v)
		if env.Body != "7BIT" && env.Body != "8BITMIME" && env.Body != "BINARYMIME" {
			return replyParamSyntax
		}
	}
	if v, ok := params["SMTPUTF8"]; ok {
		if v != "" {
			return replyParamSyntax // RFC 6531 3.4: no value
		}
		env.SMTPUTF8 = true
	}
	if v, ok := params["RET"]; ok {
		env.Ret = strings.ToUpper(v) // RFC 3461 4.3
		if env.Ret != "FULL" && env.Ret != "HDRS" {
			return replyParamSyntax
		}
	}
	if v, ok := params["ENVID"]; ok {
		// RFC 3461 4.4: xtext, at most 100 characters.
		var valid bool
		if env.EnvID, valid = decodeXtext(v); !valid || v == "" || len(v) > 100 {
			return replyParamSyntax
		}
	}
	if v, ok := params["AUTH"]; ok {
		// RFC 4954 5: AUTH=<> or the xtext of a mailbox.
		var valid bool
		if env.MailAuth, valid = decodeXtext(v); !valid || v == "" {
			return replyParamSyntax
		}
	}
	return nil
}

// rcptParams checks the RCPT parameters and records them in rcpt, unknown
// ones first, as mailParams does.
func (c *conn) rcptParams(rcpt *Recipient, params Params) *Reply {
	for k := range params {
		if !c.esmtp || k != "NOTIFY" && k != "ORCPT" {
			return replyUnknownParam
		}
	}
	if v, ok := params["NOTIFY"]; ok {
		var valid bool
		if rcpt.Notify, valid = parseNotify(v); !valid {
			return replyParamSyntax
		}
	}
	if v, ok := params["ORCPT"]; ok {
		// RFC 3461 4.2: addr-type ";" xtext, at most 500 characters.
		addrType, addr, found := strings.Cut(v, ";")
		decoded, valid := decodeXtext(addr)
		if !found || !valid || !isAtom(addrType) || addr == "" || len(v) > 500 {
			return replyParamSyntax
		}
		rcpt.ORCPT = addrType + ";" + decoded
	}
	return nil
}

// parseNotify parses NOTIFY's value (RFC 3461 4.1): NEVER alone, or a
// comma-separated list of SUCCESS, FAILURE and DELAY without repetition.
func parseNotify(v string) ([]string, bool) {
	list := strings.Split(strings.ToUpper(v), ",")
	if len(list) == 1 && list[0] == "NEVER" {
		return list, true
	}
	seen := map[string]bool{}
	for _, n := range list {
		if n != "SUCCESS" && n != "FAILURE" && n != "DELAY" || seen[n] {
			return nil, false
		}
		seen[n] = true
	}
	return list, true
}

// parseDigits parses 1 to maxLen decimal digits. A number too large for
// uint64 (20 digits may be) is math.MaxUint64: for a size that is "larger
// than any limit", not a syntax error (RFC 1870 5 allows 20 digits).
func parseDigits(s string, maxLen int) (uint64, bool) {
	if s == "" || len(s) > maxLen {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return math.MaxUint64, true
	}
	return n, true
}

// isAtom reports whether s is a non-empty run of atext (RFC 5322 3.2.3).
func isAtom(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isAtext(s[i]) {
			return false
		}
	}
	return s != ""
}

// decodeXtext decodes xtext (RFC 3461 4): printable ASCII but "+" and "=",
// and "+" followed by two upper-case hex digits for any octet.
func decodeXtext(s string) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '+':
			if i+2 >= len(s) || !isUpperHex(s[i+1]) || !isUpperHex(s[i+2]) {
				return "", false
			}
			b.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
			i += 2
		case c < '!' || c > '~' || c == '=':
			return "", false
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), true
}

func isUpperHex(c byte) bool { return '0' <= c && c <= '9' || 'A' <= c && c <= 'F' }

func unhex(c byte) byte {
	if c <= '9' {
		return c - '0'
	}
	return c - 'A' + 10
}

// parseParamList parses a list of esmtp-param separated by one or more SP
// (RFC 5321 4.1.2), ASCII only unless utf8ok is set (RFC 6531 3.3:
// esmtp-value =/ UTF8-non-ascii). Spaces before the first and after the
// last are ignored; an empty list gives nil. Which keywords are known is
// for the caller to decide.
func parseParamList(s string, utf8ok bool) (Params, error) {
	var params Params
	i := 0
	for {
		for i < len(s) && s[i] == ' ' {
			i++
		}
		if i == len(s) {
			return params, nil
		}
		// esmtp-param = esmtp-keyword ["=" esmtp-value]
		// esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-")
		start := i
		if !isLetDig(s[i]) {
			return nil, replyParamSyntax
		}
		for i < len(s) && (isLetDig(s[i]) || s[i] == '-') {
			i++
		}
		keyword := strings.ToUpper(s[start:i]) // no allocation when already upper case
		value := ""
		if i < len(s) && s[i] == '=' {
			// esmtp-value = 1*(%d33-60 / %d62-126): not empty, no "=".
			i++
			start = i
			for i < len(s) && s[i] != ' ' {
				if c := s[i]; c >= '!' && c <= '~' && c != '=' {
					i++
				} else if i = skipUTF8(s, i); i < 0 || !utf8ok {
					return nil, replyParamSyntax
				}
			}
			if i == start {
				return nil, replyParamSyntax
			}
			value = s[start:i]
		}
		if i < len(s) && s[i] != ' ' {
			return nil, replyParamSyntax
		}
		if _, dup := params[keyword]; dup {
			return nil, replyParamDuplicate
		}
		if params == nil {
			params = make(Params)
		}
		params[keyword] = value
	}
}
