package endpointpolicy

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/matryer/is"
)

func TestCheck(t *testing.T) {
	tests := []struct {
		name     string
		patterns []string
		url      string
		allowed  bool
		want     string // in the error, when refused
	}{
		// loopback
		{"loopback: 127.0.0.1", []string{"loopback"}, "http://127.0.0.1:8000", true, ""},
		{"loopback: anywhere in 127/8", []string{"loopback"}, "https://127.9.8.7/app", true, ""},
		{"loopback: ::1", []string{"loopback"}, "http://[::1]:9000/x", true, ""},
		{"loopback: mapped IPv4", []string{"loopback"}, "http://[::ffff:127.0.0.1]:9000/x", true, ""},
		{"loopback: localhost", []string{"loopback"}, "http://LocalHost:1234", true, ""},
		{"loopback: localhost with a dot", []string{"loopback"}, "http://localhost.:1234", true, ""},
		{"loopback: any port and path", []string{"loopback"}, "http://127.0.0.1:1/a/b?c=d", true, ""},
		{"loopback: not 0.0.0.0", []string{"loopback"}, "http://0.0.0.0:8000", false, "not allowed"},
		{"loopback: not the metadata service", []string{"loopback"}, "http://169.254.169.254/latest/meta-data", false, "--allow-endpoint"},
		{"loopback: not link-local IPv6", []string{"loopback"}, "http://[fe80::1]/", false, "server.Config.AllowEndpoints"},
		{"loopback: not a name", []string{"loopback"}, "http://example.com", false, "not allowed"},
		{"loopback: not a subdomain of localhost", []string{"loopback"}, "http://a.localhost", false, "not allowed"},
		{"loopback: not a short IPv4 form", []string{"loopback"}, "http://127.1", false, "not allowed"},
		{"loopback: not ftp", []string{"loopback"}, "ftp://127.0.0.1", false, "not an http or https URL"},
		// *
		{"any: a name", []string{"*"}, "https://example.com/x", true, ""},
		{"any: the metadata service", []string{"*"}, "http://169.254.169.254", true, ""},
		{"any: still no credentials", []string{"*"}, "http://user:secret@example.com", false, "credentials"},
		{"any: still no user", []string{"*"}, "http://user@example.com", false, "credentials"},
		{"any: still no fragment", []string{"*"}, "http://example.com/#frag", false, "fragment"},
		{"any: still no empty fragment", []string{"*"}, "http://example.com/#", false, "fragment"},
		{"any: still a host", []string{"*"}, "http:///x", false, "no host"},
		{"any: still a port in range", []string{"*"}, "http://h:99999", false, "port"},
		{"any: opaque", []string{"*"}, "http:foo", false, "no host"},
		// A URI Go does not parse (an IPvFuture literal): its credentials
		// are hidden all the same.
		{"any: not parsed, with credentials", []string{"*"}, "http://user:secret@[v1.x]/", false, "not a URL"},
		// URL patterns
		{"exact", []string{"https://api.example.com"}, "https://api.example.com", true, ""},
		{"host case", []string{"https://API.example.com"}, "https://api.EXAMPLE.com/run", true, ""},
		{"default port given", []string{"https://api.example.com"}, "https://api.example.com:443", true, ""},
		{"other port", []string{"https://api.example.com"}, "https://api.example.com:8443", false, "not allowed"},
		{"other scheme", []string{"https://api.example.com"}, "http://api.example.com", false, "not allowed"},
		{"http default port", []string{"http://h:80"}, "http://h/", true, ""},
		{"any port", []string{"http://h:*"}, "http://h:1234", true, ""},
		{"any port, default", []string{"http://h:*"}, "http://h", true, ""},
		{"a port", []string{"http://h:8000"}, "http://h:8000/x", true, ""},
		{"wildcard: subdomain", []string{"https://*.example.com"}, "https://a.b.example.com/x", true, ""},
		{"wildcard: not the domain itself", []string{"https://*.example.com"}, "https://example.com", false, "not allowed"},
		{"wildcard: not a suffix match", []string{"https://*.example.com"}, "https://evilexample.com", false, "not allowed"},
		{"wildcard: not another domain ending alike", []string{"https://*.example.com"}, "https://a.example.com.evil.net", false, "not allowed"},
		{"path prefix: itself", []string{"https://h/app"}, "https://h/app", true, ""},
		{"path prefix: below", []string{"https://h/app"}, "https://h/app/dispatch", true, ""},
		{"path prefix: trailing slash in pattern", []string{"https://h/app/"}, "https://h/app", true, ""},
		{"path prefix: not a longer segment", []string{"https://h/app"}, "https://h/apple", false, "not allowed"},
		{"path prefix: not above", []string{"https://h/app"}, "https://h/", false, "not allowed"},
		{"path prefix: no dot segments", []string{"https://h/app"}, "https://h/app/../admin", false, "not allowed"},
		{"path prefix: no escaped dot segments", []string{"https://h/app"}, "https://h/app/%2e%2E/admin", false, "not allowed"},
		{"path prefix: an escaped slash is not a boundary", []string{"https://h/app"}, "https://h/app%2F..%2Fadmin", false, "not allowed"},
		{"path prefix: query ignored", []string{"https://h/app"}, "https://h/app?code=k", true, ""},
		{"root path allows all", []string{"https://h/"}, "https://h/x/y", true, ""},
		{"IPv4 literal", []string{"http://10.0.0.5:8000"}, "http://10.0.0.5:8000", true, ""},
		{"IPv4 literal: not a name", []string{"http://10.0.0.5:8000"}, "http://ten:8000", false, "not allowed"},
		{"a name: not an IP", []string{"http://localhost:8000"}, "http://127.0.0.1:8000", false, "not allowed"},
		{"IPv6 literal", []string{"http://[2001:db8::1]:8000"}, "http://[2001:DB8:0::1]:8000", true, ""},
		{"IPv6 literal: other", []string{"http://[2001:db8::1]:8000"}, "http://[2001:db8::2]:8000", false, "not allowed"},
		{"metadata named exactly", []string{"http://169.254.169.254"}, "http://169.254.169.254/latest", true, ""},
		{"credentials refused even when matched", []string{"http://h"}, "http://u:p@h", false, "credentials"},
		{"no patterns", nil, "http://127.0.0.1", false, "allows no endpoint"},
		{"second pattern", []string{"loopback", "https://*.example.com:*"}, "https://x.example.com:9", true, ""},
		{"errors name the patterns", []string{"loopback", "https://a"}, "https://b", false, "it allows loopback, https://a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			p, err := New(tt.patterns...)
			is.NoErr(err)
			for range 2 { // the second time from the cache, if allowed
				err = p.Check(tt.url)
				if tt.allowed {
					is.NoErr(err)
					continue
				}
				is.True(err != nil)
				is.True(strings.Contains(err.Error(), tt.want))   // says why
				is.True(!strings.Contains(err.Error(), "secret")) // never echoes a password
			}
		})
	}
}

func TestNewInvalid(t *testing.T) {
	tests := []struct {
		pattern string
		want    string
	}{
		{"localhost", "no scheme"},
		{"ftp://h", "http or https"},
		{"http://", "no host"},
		{"http://h?x=1", "no query"},
		{"http://h#f", "no query or fragment"},
		{"http://u:p@h", "user information"},
		{"http://u@h", "user information"},
		{"http://h:", "without a port"},
		{"http://h:0", "1..65535"},
		{"http://h:65536", "1..65535"},
		{"http://h:x", "1..65535"},
		{"http://h:+80", "1..65535"},
		{"http://a.*.example.com", "first label"},
		{"http://*", "first label"},
		{"http://*example.com", "first label"},
		{"http://a..b", "empty label"},
		{"http://a b", "character"},
		{"http://::1", "character"},
		{"http://[::1", "closing bracket"},
		{"http://[127.0.0.1]", "not an IPv6"},
		{"http://[::1]x", "junk"},
		{"http://h/a/../b", "segments"},
	}
	for _, tt := range tests {
		t.Run(tt.pattern, func(t *testing.T) {
			is := is.New(t)
			_, err := New("loopback", tt.pattern)
			var pe *PatternError
			is.True(errors.As(err, &pe))
			is.Equal(pe.Index, 1)
			is.Equal(pe.Pattern, tt.pattern)
			is.True(strings.Contains(err.Error(), tt.want)) // says what is wrong
		})
	}
}

func TestCheckAddr(t *testing.T) {
	tests := []struct {
		name     string
		patterns []string
		addr     string
		kind     string // "" when allowed
	}{
		{"loopback", []string{"loopback"}, "127.0.0.1", ""},
		{"a public address", []string{"loopback"}, "93.184.216.34", ""},
		{"a private address", []string{"loopback"}, "10.1.2.3", ""},
		{"metadata", []string{"loopback"}, "169.254.169.254", "link-local"},
		{"link-local v6", []string{"loopback"}, "fe80::1", "link-local"},
		{"link-local v6 with a zone", []string{"loopback"}, "fe80::1%eth0", "link-local"},
		{"unspecified v4", []string{"loopback"}, "0.0.0.0", "unspecified"},
		{"unspecified v6", []string{"loopback"}, "::", "unspecified"},
		{"mapped unspecified", []string{"loopback"}, "::ffff:0.0.0.0", "unspecified"},
		{"multicast", []string{"loopback"}, "224.0.0.1", "multicast"},
		{"multicast v6", []string{"loopback"}, "ff02::1", "multicast"},
		{"named by a pattern", []string{"http://169.254.169.254:80"}, "169.254.169.254", ""},
		{"named v6 by a pattern", []string{"http://[fe80::1]:8000"}, "fe80::1", ""},
		{"named with a zone by a pattern", []string{"http://[fe80::1]:8000"}, "fe80::1%eth0", ""},
		{"another link-local than the one named", []string{"http://169.254.169.254"}, "169.254.1.1", "link-local"},
		{"0.0.0.0 named", []string{"http://0.0.0.0:8000"}, "0.0.0.0", ""},
		{"any", []string{"*"}, "169.254.169.254", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			p, err := New(tt.patterns...)
			is.NoErr(err)
			err = p.CheckAddr(netip.MustParseAddr(tt.addr))
			if tt.kind == "" {
				is.NoErr(err)
				return
			}
			var ae *AddrError
			is.True(errors.As(err, &ae))
			is.Equal(ae.Kind, tt.kind)
			is.True(errors.Is(err, ErrForbiddenAddress))
			is.True(strings.Contains(err.Error(), "--allow-endpoint")) // says how to allow it
		})
	}
}

func TestEndpointPattern(t *testing.T) {
	tests := []struct {
		endpoint, want string
	}{
		{"http://127.0.0.1:8000", "http://127.0.0.1:8000"},
		{"https://h/app?code=key", "https://h/app"},
		{"http://[::1]:8000/x/", "http://[::1]:8000/x/"},
	}
	for _, tt := range tests {
		t.Run(tt.endpoint, func(t *testing.T) {
			is := is.New(t)
			got, err := EndpointPattern(tt.endpoint)
			is.NoErr(err)
			is.Equal(got, tt.want)
			p, err := New(got)
			is.NoErr(err)
			is.NoErr(p.Check(tt.endpoint)) // the endpoint is allowed by its pattern
		})
	}
	_, err := EndpointPattern("http://u:p@h")
	is.New(t).True(err != nil)
}

func TestRedact(t *testing.T) {
	tests := []struct{ in, want string }{
		{"http://h/x", "http://h/x"},
		{"http://user:secret@h/x", "http://user:xxxxx@h/x"},
		{"http://user@h/x", "http://user@h/x"},
		{"http://user:secret@h:bad/x", "http://xxxxx@h:bad/x"},
		{"http://user:secret@[v1.x]/a@b", "http://xxxxx@[v1.x]/a@b"},
		{"http://u:p@q:secret@h /x?y=@z", "http://xxxxx@h /x?y=@z"},
		{"http://h:bad/a@b", "http://h:bad/a@b"},
		{"not a url at all: %zz", "not a url at all: %zz"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			is.New(t).Equal(Redact(tt.in), tt.want)
		})
	}
}

func BenchmarkCheck(b *testing.B) {
	p, err := New("loopback", "http://127.0.0.1:8000")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := p.Check("http://127.0.0.1:8000"); err != nil {
			b.Fatal(err)
		}
	}
}
