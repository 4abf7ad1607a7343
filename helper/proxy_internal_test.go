package helper

import (
	"net/http"
	"net/netip"
	"strings"
	"testing"
)

// Which address a connection is known by, for each shape of forwarding
// headers: only a trusted peer's headers count, X-Forwarded-For is read
// from the right past trusted hops, and junk ends the chain.
func TestClientAddr(t *testing.T) {
	trusted, err := parseTrustedProxies([]string{"10.0.0.0/8", "::1", " 192.0.2.1 ", "::ffff:172.16.0.0/108"})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, peer string
		xff        []string
		realIP     string
		want       string
	}{
		{"no headers", "10.1.2.3:5000", nil, "", "10.1.2.3:5000"},
		{"untrusted peer's headers ignored", "203.0.113.5:4000", []string{"198.51.100.9"}, "198.51.100.7", "203.0.113.5:4000"},
		{"one hop", "10.1.2.3:5000", []string{"198.51.100.9"}, "", "198.51.100.9"},
		{"forged start skipped", "10.1.2.3:5000", []string{"1.1.1.1, 198.51.100.9"}, "", "198.51.100.9"},
		{"trusted hops skipped", "10.1.2.3:5000", []string{"198.51.100.9, 10.9.9.9 ,192.0.2.1"}, "", "198.51.100.9"},
		{"several header lines", "10.1.2.3:5000", []string{"1.1.1.1, 198.51.100.9", "10.0.0.2"}, "", "198.51.100.9"},
		{"all trusted: the leftmost", "10.1.2.3:5000", []string{"10.0.0.9, 10.0.0.8"}, "", "10.0.0.9"},
		{"junk ends the chain", "10.1.2.3:5000", []string{"198.51.100.9, bogus, 10.0.0.8"}, "", "10.1.2.3:5000"},
		{"empty entry ends the chain", "10.1.2.3:5000", []string{"198.51.100.9,,10.0.0.8"}, "", "10.1.2.3:5000"},
		{"junk falls back to X-Real-IP", "10.1.2.3:5000", []string{"bogus"}, "198.51.100.7", "198.51.100.7"},
		{"X-Real-IP", "10.1.2.3:5000", nil, " 198.51.100.7 ", "198.51.100.7"},
		{"X-Real-IP junk", "10.1.2.3:5000", nil, "nope", "10.1.2.3:5000"},
		{"entry with a port", "10.1.2.3:5000", []string{"198.51.100.9:4711"}, "", "198.51.100.9"},
		{"IPv6 entry with a port", "10.1.2.3:5000", []string{"[2001:db8::1]:4711"}, "", "2001:db8::1"},
		{"IPv6 peer", "[::1]:5000", []string{"2001:db8::2"}, "", "2001:db8::2"},
		{"mapped peer", "[::ffff:10.1.2.3]:5000", []string{"198.51.100.9"}, "", "198.51.100.9"},
		{"mapped entry", "10.1.2.3:5000", []string{"::ffff:198.51.100.9"}, "", "198.51.100.9"},
		{"mapped prefix", "172.16.4.4:5000", []string{"198.51.100.9"}, "", "198.51.100.9"},
		{"outside the mapped prefix", "172.32.4.4:5000", []string{"198.51.100.9"}, "", "172.32.4.4:5000"},
		{"peer not an address", "pipe", []string{"198.51.100.9"}, "", "pipe"},
	}
	for _, tc := range cases {
		r := &http.Request{RemoteAddr: tc.peer, Header: http.Header{}}
		for _, v := range tc.xff {
			r.Header.Add("X-Forwarded-For", v)
		}
		if tc.realIP != "" {
			r.Header.Set("X-Real-IP", tc.realIP)
		}
		if got := trusted.clientAddr(r); got != tc.want {
			t.Errorf("%s: clientAddr = %q, want %q", tc.name, got, tc.want)
		}
	}
	r := &http.Request{RemoteAddr: "10.1.2.3:5000", Header: http.Header{"X-Forwarded-For": {"198.51.100.9"}}}
	if got := trustedProxies(nil).clientAddr(r); got != "10.1.2.3:5000" {
		t.Errorf("no trusted proxies: clientAddr = %q, want the peer", got)
	}
}

func TestTrustedProxiesValidated(t *testing.T) {
	err := Options{TrustedProxies: []string{"10.0.0.0/8", "10.0.0.0/33", "localhost"}}.Validate()
	if err == nil {
		t.Fatal("bad TrustedProxies accepted")
	}
	for _, bad := range []string{`"10.0.0.0/33"`, `"localhost"`} {
		if !strings.Contains(err.Error(), bad) {
			t.Errorf("error %q does not name %s", err, bad)
		}
	}
	if strings.Contains(err.Error(), `"10.0.0.0/8"`) {
		t.Errorf("error %q names a good entry", err)
	}
}

// A trusted proxy reached over IPv6 link-local has a zone in the peer
// address ("[fe80::1%eth0]:5000"), which no prefix contains: it is trusted
// all the same (found in review).
func TestZonedPeerTrusted(t *testing.T) {
	for _, list := range [][]string{{"fe80::/10"}, {"fe80::1"}, {"fe80::1%eth0"}} {
		tp, err := parseTrustedProxies(list)
		if err != nil {
			t.Fatal(err)
		}
		r := &http.Request{RemoteAddr: "[fe80::1%eth0]:5000", Header: http.Header{"X-Forwarded-For": {"198.51.100.9"}}}
		if got := tp.clientAddr(r); got != "198.51.100.9" {
			t.Errorf("TrustedProxies %v, peer [fe80::1%%eth0]:5000: clientAddr = %q, want the forwarded 198.51.100.9", list, got)
		}
	}
}

// A forwarded address's IPv6 zone, which netip takes with any text in it,
// is dropped: RemoteAddr is an IP address, not text a client chose (found
// in review).
func TestForwardedZoneDropped(t *testing.T) {
	tp, _ := parseTrustedProxies([]string{"10.0.0.0/8"})
	for _, h := range []http.Header{
		{"X-Real-Ip": {`fe80::1%admin" role="root`}},
		{"X-Forwarded-For": {`fe80::1%admin" role="root`}},
	} {
		r := &http.Request{RemoteAddr: "10.1.2.3:5000", Header: h}
		if got := tp.clientAddr(r); got != "fe80::1" {
			t.Errorf("headers %v: clientAddr = %q, want an IP address (or the peer)", h, got)
		}
	}
}

// A zoned prefix is a prefix, its zone ignored as an address's is (found
// in review: "fe80::%eth0/64" was taken as the single address fe80::).
func TestZonedPrefixTrusted(t *testing.T) {
	trusted, err := parseTrustedProxies([]string{"fe80::%eth0/64", "fe80::9%eth1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"fe80::2%eth0", "fe80::2", "fe80::9"} {
		if !trusted.has(netip.MustParseAddr(a)) {
			t.Errorf("%s not trusted by %v", a, trusted)
		}
	}
	if trusted.has(netip.MustParseAddr("fe81::2")) {
		t.Error("fe81::2 trusted")
	}
	if _, err := parseTrustedProxies([]string{"fe80::%/64", "fe80::%a%b"}); err == nil {
		t.Error("malformed zones accepted")
	}
}
