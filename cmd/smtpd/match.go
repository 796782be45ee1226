package main

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"unicode/utf8"

	"smtpd/internal/glob"
)

// The lists of -deny-hosts, -allow-hosts, -deny-senders, -deny-recipients
// and -accept-domains. Each is a flag.Value, so a bad entry is reported by
// the flag package naming the flag and the entry. A flag given twice adds
// to its list.

// hostList is a list of IP networks; a single address is a network of one.
type hostList []netip.Prefix

func (l *hostList) String() string {
	if l == nil {
		return ""
	}
	s := make([]string, len(*l))
	for i, p := range *l {
		if p.IsSingleIP() {
			s[i] = p.Addr().String()
		} else {
			s[i] = p.String()
		}
	}
	return strings.Join(s, ",")
}

func (l *hostList) Set(v string) error {
	for _, e := range splitList(v) {
		var p netip.Prefix
		if strings.Contains(e, "/") {
			var err error
			if p, err = netip.ParsePrefix(e); err != nil {
				return fmt.Errorf("%q is not an IP address or CIDR network", e)
			}
			// "192.0.2.7/24" means the network, as in most ACLs.
			p = p.Masked()
		} else {
			a, err := netip.ParseAddr(e)
			if err != nil || a.Zone() != "" {
				return fmt.Errorf("%q is not an IP address or CIDR network", e)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		// An IPv4 client on a dual-stack socket shows as ::ffff:a.b.c.d;
		// both sides are compared unmapped.
		if p.Addr().Is4In6() {
			p = netip.PrefixFrom(p.Addr().Unmap(), max(p.Bits()-96, 0))
		}
		*l = append(*l, p)
	}
	return nil
}

// contains reports whether the address a is in one of the networks.
func (l hostList) contains(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range l {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// remoteIP returns the IP address of a client, or false for a connection
// that is not TCP.
func remoteIP(a net.Addr) (netip.Addr, bool) {
	t, ok := a.(*net.TCPAddr)
	if !ok {
		return netip.Addr{}, false
	}
	ip, ok := netip.AddrFromSlice(t.IP)
	return ip.Unmap(), ok
}

// patternList is a list of the shell-like patterns of internal/glob.
type patternList []string

func (l *patternList) String() string {
	if l == nil {
		return ""
	}
	return strings.Join(*l, ",")
}

func (l *patternList) Set(v string) error {
	for _, e := range splitList(v) {
		if !utf8.ValidString(e) {
			return fmt.Errorf("%q is not valid UTF-8", e)
		}
		*l = append(*l, e)
	}
	return nil
}

// match reports whether s matches one of the patterns, ignoring case.
func (l patternList) match(s string) bool {
	for _, p := range l {
		if glob.Match(p, s) {
			return true
		}
	}
	return false
}

// splitList splits a comma-separated flag value, dropping spaces and
// empty entries so that "a, b," means "a,b".
func splitList(v string) []string {
	var out []string
	for _, e := range strings.Split(v, ",") {
		if e = strings.TrimSpace(e); e != "" {
			out = append(out, e)
		}
	}
	return out
}
