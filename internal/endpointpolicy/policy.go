// Package endpointpolicy decides which endpoint URLs the local Dispatch
// server sends Run requests to. A call names its endpoint, and the server
// sends signed POSTs there and retries them until the call expires: on a
// network, a server that sends them anywhere is an open relay into the
// networks it can reach (other ports of its host, the cloud metadata
// service at 169.254.169.254, private services). A [Policy] allows the
// endpoints that match one of its patterns and refuses the others.
//
// # Patterns
//
//   - "loopback": any http or https URL whose host is localhost or a
//     loopback IP literal (127.0.0.0/8, ::1), any port and path.
//   - "*": any http or https URL. This turns the policy off: use it only on
//     a trusted network.
//   - a URL scheme://host[:port][/path], where scheme is http or https;
//     host is a name, an IPv4 literal, an IPv6 literal in brackets, or
//     *.example.com (the subdomains of example.com, not example.com
//     itself); port is a number, * (any port), or missing (the scheme's
//     default, 80 or 443); a path is a prefix matched at a segment
//     boundary (/app allows /app and /app/run, not /apple), and a URL
//     with . or .. segments never matches a pattern with a path. Host
//     names are compared case-insensitively. A pattern has no user
//     information, query or fragment.
//
// The query of an endpoint URL is not matched: a pattern allows the URL
// whatever its query.
//
// Whatever the patterns say, a URL with credentials (user:password@, or
// even user@) or with a fragment is refused: credentials in a URL end up
// in logs and in the store, and a fragment is never sent.
//
// # Addresses
//
// A pattern names hosts, and a host name may resolve to any address. So
// that a name cannot lead to addresses no endpoint should have, the
// server's dialer asks [Policy.CheckAddr] before it connects: unspecified
// (0.0.0.0, ::), link-local (169.254.0.0/16, where cloud metadata services
// answer, and fe80::/10) and multicast addresses are refused unless a
// pattern names that exact IP literal, or the policy is "*".
package endpointpolicy

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// Policy is a set of allowed endpoint patterns. It is safe for concurrent
// use.
type Policy struct {
	patterns []string // as given, for messages
	any      bool     // "*"
	loopback bool     // "loopback"
	rules    []rule
	ips      map[netip.Addr]struct{} // IP literals the rules name

	// allowed caches URLs found allowed, so that the endpoint every call
	// names is parsed once; at most maxCached of them.
	allowed sync.Map // string -> struct{}
	cached  atomic.Int32
}

// maxCached bounds the URLs remembered as allowed.
const maxCached = 1024

// rule is a URL pattern.
type rule struct {
	scheme string
	// host is a lower-case name without a trailing dot, the suffix
	// ".example.com" when wildcard, or empty when ip is set.
	host     string
	wildcard bool
	ip       netip.Addr
	port     int // 0: any
	path     string
}

// PatternError is the error of [New] about one pattern.
type PatternError struct {
	Index   int    // the pattern's index in the list given to New
	Pattern string // the pattern
	Reason  string // what is wrong with it
}

func (e *PatternError) Error() string {
	return fmt.Sprintf("endpoint pattern %q: %s; want loopback, *, or a URL like https://*.example.com:8443/app", e.Pattern, e.Reason)
}

// New returns the policy that allows the URLs matching any of patterns
// (see the package documentation). An invalid pattern fails New with a
// *[PatternError]. No pattern allows nothing.
func New(patterns ...string) (*Policy, error) {
	p := &Policy{patterns: append([]string(nil), patterns...), ips: map[netip.Addr]struct{}{}}
	for i, s := range patterns {
		switch s {
		case "*":
			p.any = true
			continue
		case "loopback":
			p.loopback = true
			continue
		}
		r, reason := parsePattern(s)
		if reason != "" {
			return nil, &PatternError{Index: i, Pattern: s, Reason: reason}
		}
		if r.ip.IsValid() {
			p.ips[r.ip] = struct{}{}
		}
		p.rules = append(p.rules, r)
	}
	return p, nil
}

// EndpointPattern returns the pattern that allows the endpoint URL
// endpoint: its scheme, host, port and path, its query dropped.
func EndpointPattern(endpoint string) (string, error) {
	u, reason := parseURL(endpoint)
	if reason != "" {
		return "", errors.New(reason)
	}
	return u.Scheme + "://" + u.Host + u.EscapedPath(), nil
}

// parsePattern parses a URL pattern; the reason is empty when it is valid.
func parsePattern(s string) (rule, string) {
	var r rule
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		return r, "not a URL (no scheme://)"
	}
	r.scheme = strings.ToLower(scheme)
	if r.scheme != "http" && r.scheme != "https" {
		return r, "the scheme must be http or https"
	}
	if strings.ContainsAny(rest, "?#") {
		return r, "a pattern has no query or fragment"
	}
	authority, path := rest, ""
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		authority, path = rest[:i], rest[i:]
	}
	if strings.Contains(authority, "@") {
		return r, "a pattern has no user information (user:password@)"
	}
	host, port := authority, ""
	if strings.HasPrefix(authority, "[") {
		end := strings.IndexByte(authority, ']')
		if end < 0 {
			return r, "an IPv6 literal without its closing bracket"
		}
		host, port = authority[1:end], authority[end+1:]
		ip, err := netip.ParseAddr(strings.Replace(host, "%25", "%", 1)) // a zone, escaped as in URLs
		if err != nil || !ip.Is6() {
			return r, fmt.Sprintf("%q in brackets is not an IPv6 address", host)
		}
		r.ip = ip.Unmap()
		if port != "" {
			if port[0] != ':' {
				return r, "junk after the IPv6 literal"
			}
			port = port[1:]
		}
	} else {
		if i := strings.LastIndexByte(authority, ':'); i >= 0 {
			host, port = authority[:i], authority[i+1:]
		}
		if ip, err := netip.ParseAddr(host); err == nil {
			if ip.Is6() {
				return r, "an IPv6 literal goes in brackets, like http://[::1]:8000"
			}
			r.ip = ip
		} else if reason := parseHostPattern(&r, host); reason != "" {
			return r, reason
		}
	}
	if strings.HasSuffix(authority, ":") {
		return r, "a colon without a port"
	}
	switch port {
	case "":
		r.port = defaultPort(r.scheme)
	case "*":
		r.port = 0
	default:
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 || port[0] == '+' {
			return r, fmt.Sprintf("port %q is not a number in 1..65535 nor *", port)
		}
		r.port = n
	}
	if path != "" {
		if _, err := url.Parse("http://h" + path); err != nil {
			return r, fmt.Sprintf("path %q is not a URL path", path)
		}
		if hasDotSegment(path) {
			return r, "the path has . or .. segments"
		}
	}
	r.path = strings.TrimRight(path, "/")
	return r, ""
}

// parseHostPattern sets r's host from a host name or *.name.
func parseHostPattern(r *rule, host string) string {
	name := strings.ToLower(strings.TrimSuffix(host, "."))
	if rest, ok := strings.CutPrefix(name, "*."); ok {
		r.wildcard = true
		name = rest
	}
	if name == "" {
		return "no host"
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" {
			return fmt.Sprintf("host %q has an empty label", host)
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				if c == '*' {
					return fmt.Sprintf("host %q: * is allowed only as the first label, as in *.example.com", host)
				}
				return fmt.Sprintf("host %q has a character %q that no host name has", host, c)
			}
		}
	}
	r.host = name
	if r.wildcard {
		r.host = "." + name
	}
	return ""
}

func defaultPort(scheme string) int {
	if scheme == "https" {
		return 443
	}
	return 80
}

// hasDotSegment reports whether the escaped path p has a . or ..
// segment, escaped or not.
func hasDotSegment(p string) bool {
	for seg := range strings.SplitSeq(p, "/") {
		if s, err := url.PathUnescape(seg); err == nil && (s == "." || s == "..") {
			return true
		}
	}
	return false
}

// parseURL parses an endpoint URL and checks what every endpoint must be,
// whatever the patterns: http or https, a host, no credentials, no
// fragment. The reason is empty when it is fine.
func parseURL(s string) (*url.URL, string) {
	if strings.Contains(s, "#") {
		return nil, "it has a fragment (#...), which is never sent: remove it"
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, "it is not a URL"
	}
	if u.User != nil {
		return nil, "it carries credentials (user:password@ or user@), which are never allowed in an endpoint URL: they would be logged and stored"
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, "it is not an http or https URL"
	}
	if u.Opaque != "" || u.Host == "" || u.Hostname() == "" {
		return nil, "it has no host"
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return nil, fmt.Sprintf("its port %q is not in 1..65535", p)
		}
	}
	return u, ""
}

// Check returns nil if the policy allows endpoint, and else an error that
// says why not (without the URL's credentials, if it has any).
func (p *Policy) Check(endpoint string) error {
	if _, ok := p.allowed.Load(endpoint); ok {
		return nil
	}
	u, reason := parseURL(endpoint)
	if reason != "" {
		return fmt.Errorf("endpoint %q is refused: %s", Redact(endpoint), reason)
	}
	if !p.matches(u) {
		return fmt.Errorf("endpoint %q is not allowed by the server's endpoint policy (%s): allow it with --allow-endpoint (dispatch test) or server.Config.AllowEndpoints", endpoint, p.describe())
	}
	if p.cached.Load() < maxCached {
		if _, loaded := p.allowed.LoadOrStore(endpoint, struct{}{}); !loaded {
			p.cached.Add(1)
		}
	}
	return nil
}

// describe lists what the policy allows, for messages.
func (p *Policy) describe() string {
	if len(p.patterns) == 0 {
		return "it allows no endpoint"
	}
	const most = 5
	list := p.patterns
	more := ""
	if len(list) > most {
		list, more = list[:most], fmt.Sprintf(" and %d more", len(p.patterns)-most)
	}
	return "it allows " + strings.Join(list, ", ") + more
}

// Redact returns s as messages may show it: the password of a URL hidden,
// as [url.URL.Redacted] does, and, in a string that does not parse as a
// URL (whose user information cannot be told apart from the rest), all
// that stands between "//" and the last "@" before the path.
func Redact(s string) string {
	u, err := url.Parse(s)
	if err == nil {
		if u.User != nil {
			return u.Redacted()
		}
		return s
	}
	_, rest, ok := strings.Cut(s, "//")
	if !ok {
		return s
	}
	authority := rest
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		authority = rest[:i]
	}
	at := strings.LastIndexByte(authority, '@')
	if at < 0 {
		return s
	}
	start := len(s) - len(rest)
	return s[:start] + "xxxxx" + s[start+at:]
}

// matches reports whether a checked URL matches a pattern.
func (p *Policy) matches(u *url.URL) bool {
	if p.any {
		return true
	}
	hostname := u.Hostname()
	ip, err := netip.ParseAddr(hostname)
	isIP := err == nil
	if isIP {
		ip = ip.Unmap()
	}
	name := strings.ToLower(strings.TrimSuffix(hostname, "."))
	if p.loopback && (name == "localhost" || isIP && ip.IsLoopback()) {
		return true
	}
	port := defaultPort(u.Scheme)
	if s := u.Port(); s != "" {
		port, _ = strconv.Atoi(s) // checked by parseURL
	}
	path := u.EscapedPath()
	for _, r := range p.rules {
		if r.scheme != u.Scheme || r.port != 0 && r.port != port {
			continue
		}
		switch {
		case r.ip.IsValid():
			if !isIP || r.ip != ip {
				continue
			}
		case isIP:
			continue
		case r.wildcard:
			if !strings.HasSuffix(name, r.host) {
				continue
			}
		case name != r.host:
			continue
		}
		if r.path != "" && (path != r.path && !strings.HasPrefix(path, r.path+"/") || hasDotSegment(path)) {
			continue
		}
		return true
	}
	return false
}

// ErrForbiddenAddress is wrapped by the errors of [Policy.CheckAddr].
var ErrForbiddenAddress = errors.New("forbidden address")

// AddrError is the error of [Policy.CheckAddr].
type AddrError struct {
	Addr netip.Addr
	Kind string // "unspecified", "link-local", "multicast"
}

func (e *AddrError) Error() string {
	what := "a " + e.Kind + " address"
	if e.Kind == "unspecified" {
		what = "an unspecified address"
	}
	if e.Addr == netip.AddrFrom4([4]byte{169, 254, 169, 254}) {
		what += " (the cloud metadata service)"
	}
	ip := e.Addr.WithZone("").String()
	if e.Addr.Is6() {
		ip = "[" + ip + "]"
	}
	return fmt.Sprintf("refusing to connect to %s, %s, which no endpoint should have: to allow it, name it as an IP literal in a pattern (--allow-endpoint http://%s:PORT, or in server.Config.AllowEndpoints)", e.Addr, what, ip)
}

func (e *AddrError) Unwrap() error { return ErrForbiddenAddress }

// CheckAddr returns nil if the server may connect to ip, and else an
// *[AddrError]: unspecified, link-local and multicast addresses are
// refused unless a pattern names that IP literal or the policy is "*".
func (p *Policy) CheckAddr(ip netip.Addr) error {
	ip = ip.Unmap()
	kind := ""
	switch {
	case ip.IsUnspecified():
		kind = "unspecified"
	case ip.IsLinkLocalUnicast():
		kind = "link-local"
	case ip.IsMulticast():
		kind = "multicast"
	default:
		return nil
	}
	if p.any {
		return nil
	}
	if _, ok := p.ips[ip]; ok {
		return nil
	}
	if _, ok := p.ips[ip.WithZone("")]; ok {
		return nil
	}
	return &AddrError{Addr: ip, Kind: kind}
}
