package helper

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
)

// trustedProxies are the peers whose forwarding headers are believed
// (Options.TrustedProxies).
type trustedProxies []netip.Prefix

// parseTrustedProxies reads "10.0.0.0/8"-style prefixes and bare
// addresses; the error names every entry that is neither.
func parseTrustedProxies(list []string) (trustedProxies, error) {
	var t trustedProxies
	var errs []error
	for _, s := range list {
		s = strings.TrimSpace(s)
		if i := strings.IndexByte(s, '%'); i >= 0 {
			// A zone names an interface of ours: any will do, and
			// netip takes none in a prefix ("fe80::%eth0/64").
			zone, bits, _ := strings.Cut(s[i+1:], "/")
			if zone == "" || strings.ContainsAny(zone, "/%") {
				errs = append(errs, fmt.Errorf("TrustedProxies: %q has an empty or malformed zone", s))
				continue
			}
			s = s[:i]
			if bits != "" {
				s += "/" + bits
			}
		}
		if p, err := netip.ParsePrefix(s); err == nil {
			t = append(t, netip.PrefixFrom(p.Addr().Unmap(), unmappedBits(p)).Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("TrustedProxies: %q is neither an IP address nor a CIDR prefix", s))
			continue
		}
		a = a.Unmap()
		t = append(t, netip.PrefixFrom(a, a.BitLen()))
	}
	return t, errors.Join(errs...)
}

// unmappedBits is p's length once its address is unmapped: ::ffff:10.0.0.0/104
// is 10.0.0.0/8.
func unmappedBits(p netip.Prefix) int {
	if p.Addr().Is4In6() {
		return max(p.Bits()-96, 0)
	}
	return p.Bits()
}

// plain is a without an IPv4 mapping or an IPv6 zone: the address as the
// prefixes hold it (a prefix never contains a zoned address) and as a
// client's address is reported (a zone means nothing off this host, and
// netip takes any text in it).
func plain(a netip.Addr) netip.Addr { return a.Unmap().WithZone("") }

func (t trustedProxies) has(a netip.Addr) bool {
	a = plain(a)
	for _, p := range t {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// clientAddr is the address a connection is known by: the TCP peer's
// "ip:port", or, when that peer is a trusted proxy, the client's IP from
// the headers it set. X-Forwarded-For is read from the right, past the
// trusted proxies' own entries, because only the entries those proxies
// appended can be believed: a client can start the list with anything.
func (t trustedProxies) clientAddr(r *http.Request) string {
	if len(t) == 0 {
		return r.RemoteAddr
	}
	peer, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil || !t.has(peer.Addr()) {
		return r.RemoteAddr
	}
	if a, ok := t.forwardedFor(r.Header.Values("X-Forwarded-For")); ok {
		return a.String()
	}
	if a, ok := parseForwarded(r.Header.Get("X-Real-Ip")); ok {
		return a.String()
	}
	return r.RemoteAddr
}

// forwardedFor is the rightmost address in the X-Forwarded-For values that
// is not a trusted proxy's, or the leftmost when all are. An entry that is
// not an address ends the search: the chain cannot be followed past it.
func (t trustedProxies) forwardedFor(values []string) (netip.Addr, bool) {
	var last netip.Addr
	for i := len(values) - 1; i >= 0; i-- {
		v := values[i]
		for v != "" {
			entry := v
			if j := strings.LastIndexByte(v, ','); j >= 0 {
				entry, v = v[j+1:], v[:j]
			} else {
				v = ""
			}
			a, ok := parseForwarded(entry)
			if !ok {
				return netip.Addr{}, false
			}
			if !t.has(a) {
				return a, true
			}
			last = a
		}
	}
	return last, last.IsValid()
}

// parseForwarded reads one forwarded address: an IP, or an IP with a port
// as some proxies write it ("203.0.113.7:4711", "[2001:db8::1]:4711").
func parseForwarded(s string) (netip.Addr, bool) {
	s = strings.TrimSpace(s)
	if a, err := netip.ParseAddr(s); err == nil {
		return plain(a), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return plain(ap.Addr()), true
	}
	return netip.Addr{}, false
}
