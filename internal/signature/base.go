package signature

import (
	"fmt"
	"net/http"
	"net/textproto"
	"strings"
)

// The covered components of a Dispatch signature, in the order the signer
// lists them. A verifier accepts them in any order.
const (
	compMethod        = "@method"
	compPath          = "@path"
	compAuthority     = "@authority"
	compContentType   = "content-type"
	compContentDigest = "content-digest"
)

// requiredComponents are the components every accepted signature covers.
var requiredComponents = [...]string{compMethod, compPath, compAuthority, compContentType, compContentDigest}

// signerComponents are the covered components as the signer lists them.
var signerComponents = []listItem{
	{val: bareItem{kind: kindString, str: compMethod}},
	{val: bareItem{kind: kindString, str: compPath}},
	{val: bareItem{kind: kindString, str: compAuthority}},
	{val: bareItem{kind: kindString, str: compContentType}},
	{val: bareItem{kind: kindString, str: compContentDigest}},
}

// appendSignatureBase appends to dst the RFC 9421 signature base for the
// covered components of r and the serialized signature parameters params:
// one `"name": value` line per component, then the "@signature-params"
// line, joined by "\n". The components must be plain strings without
// parameters. Errors say which component could not be read from r; their
// messages have no package prefix, callers add it.
func appendSignatureBase(dst []byte, r *http.Request, components []listItem, params string) ([]byte, error) {
	for _, c := range components {
		name := c.val.str
		value, err := componentValue(r, name)
		if err != nil {
			return nil, err
		}
		if strings.ContainsAny(value, "\r\n") {
			return nil, fmt.Errorf("the value of covered component %q contains a line break", name)
		}
		dst = append(dst, '"')
		dst = append(dst, name...)
		dst = append(dst, `": `...)
		dst = append(dst, value...)
		dst = append(dst, '\n')
	}
	dst = append(dst, `"@signature-params": `...)
	dst = append(dst, params...)
	return dst, nil
}

// componentValue is the value of one covered component of r.
func componentValue(r *http.Request, name string) (string, error) {
	switch name {
	case compMethod:
		if r.Method == "" {
			return http.MethodGet, nil // net/http's meaning of an empty method
		}
		return r.Method, nil
	case compPath:
		return requestPath(r), nil
	case compAuthority:
		return requestAuthority(r), nil
	case "@query":
		return "?" + requestQuery(r), nil
	}
	if strings.HasPrefix(name, "@") {
		return "", fmt.Errorf("covered component %q is not supported (supported derived components: @method, @path, @authority, @query)", name)
	}
	if !isFieldName(name) {
		return "", fmt.Errorf("covered component %q is not a lower-case HTTP field name", name)
	}
	var key string
	switch name {
	case compContentType:
		key = "Content-Type"
	case compContentDigest:
		key = "Content-Digest"
	default:
		key = textproto.CanonicalMIMEHeaderKey(name)
	}
	value, ok := fieldValue(r.Header, key)
	if !ok {
		return "", fmt.Errorf("covered component %q is not in the request", name)
	}
	return value, nil
}

// fieldValue is the value of the header field key (in canonical form), as
// RFC 9421 section 2.1 defines it: each field line's value trimmed of
// surrounding whitespace, the lines joined with ", ". ok is false when the
// field is absent.
func fieldValue(h http.Header, key string) (value string, ok bool) {
	lines := h[key]
	switch len(lines) {
	case 0:
		return "", false
	case 1:
		return trimOWS(lines[0]), true
	}
	var b strings.Builder
	for i, line := range lines {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(trimOWS(line))
	}
	return b.String(), true
}

// requestPath is the "@path" component: the escaped path the client asked
// for, without the query, "/" when empty. On the server side it comes from
// r.RequestURI, which http.StripPrefix and routers leave alone while they
// rewrite r.URL.Path.
func requestPath(r *http.Request) string {
	if p, ok := pathOfRequestURI(r.RequestURI); ok {
		return p
	}
	if r.URL == nil {
		return "/"
	}
	if p := r.URL.EscapedPath(); p != "" {
		return p
	}
	return "/"
}

// pathOfRequestURI extracts the path of a request target in origin form
// ("/a/b?q") or absolute form ("http://host/a/b?q").
func pathOfRequestURI(uri string) (string, bool) {
	if uri == "" || uri == "*" {
		return "", false
	}
	if uri[0] != '/' {
		// Absolute form, as sent to proxies: skip "scheme://authority".
		i := strings.Index(uri, "://")
		if i < 0 {
			return "", false
		}
		uri = uri[i+3:]
		j := strings.IndexAny(uri, "/?#")
		if j < 0 || uri[j] != '/' {
			return "/", true
		}
		uri = uri[j:]
	}
	if i := strings.IndexAny(uri, "?#"); i >= 0 {
		uri = uri[:i]
	}
	return uri, true
}

// requestQuery is the raw query of the request, without "?".
func requestQuery(r *http.Request) string {
	if uri := r.RequestURI; uri != "" && uri != "*" {
		if i := strings.IndexByte(uri, '?'); i >= 0 {
			uri = uri[i+1:]
			if j := strings.IndexByte(uri, '#'); j >= 0 {
				uri = uri[:j]
			}
			return uri
		}
		return ""
	}
	if r.URL == nil {
		return ""
	}
	return r.URL.RawQuery
}

// requestAuthority is the "@authority" component: r.Host, or r.URL.Host for
// a client request without one, lower-cased, with the port kept. An empty
// port ("host:") is dropped, as net/http's client does when it sends Host.
func requestAuthority(r *http.Request) string {
	host := r.Host
	if host == "" && r.URL != nil {
		host = r.URL.Host
	}
	host = strings.TrimSuffix(host, ":")
	return strings.ToLower(host)
}

// trimOWS trims spaces and tabs from both ends of s.
func trimOWS(s string) string {
	return strings.Trim(s, " \t")
}

// isFieldName reports whether s is a lower-case HTTP field name.
func isFieldName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' || !isTchar(c) {
			return false
		}
	}
	return true
}
