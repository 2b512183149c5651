package signature

import (
	"fmt"
	"strings"
)

// This file parses RFC 8941 structured field dictionaries, the syntax of
// Signature-Input, Signature and Content-Digest. It follows the parsing
// algorithms of RFC 8941 section 4.2 with one deliberate difference: a
// dictionary or parameter key that appears twice is kept twice, in order,
// instead of the later value replacing the earlier one. Callers decide what
// a duplicate means; for signatures it means "refuse".
//
// Parsed strings and tokens are substrings of the input (a string with
// escapes is copied), and byte sequences are kept as their base64 text and
// decoded on use, so parsing a typical header allocates only its slices.

// itemKind is the type of an RFC 8941 bare item.
type itemKind uint8

const (
	kindBoolean itemKind = iota + 1
	kindInteger
	kindDecimal
	kindString
	kindToken
	kindByteSeq
)

func (k itemKind) String() string {
	switch k {
	case kindBoolean:
		return "boolean"
	case kindInteger:
		return "integer"
	case kindDecimal:
		return "decimal"
	case kindString:
		return "string"
	case kindToken:
		return "token"
	case kindByteSeq:
		return "byte sequence"
	}
	return "unknown"
}

// bareItem is an RFC 8941 bare item.
type bareItem struct {
	kind itemKind
	// str is the value of a string (unescaped) or a token, the base64 text
	// of a byte sequence (between the colons), or the text of a decimal.
	str  string
	num  int64 // the value of an integer
	flag bool  // the value of a boolean
}

// param is one parameter of an item, inner list or dictionary member.
type param struct {
	key string
	val bareItem
}

// listItem is an item of an inner list.
type listItem struct {
	val    bareItem
	params []param
}

// member is one member of a dictionary.
type member struct {
	key    string
	isList bool       // the value is an inner list
	list   []listItem // the inner list's items, when isList
	val    bareItem   // the item, when !isList
	params []param    // the parameters of the item or inner list
	// raw is the text of the value after "=", parameters included, exactly
	// as it appears in the input; empty for a bare-key (true) member.
	raw string
}

// Limits keep a hostile header from making the parser or a caller's checks
// do unbounded work. Real headers are far below them.
const (
	maxMembers    = 64
	maxListItems  = 64
	maxParameters = 64
)

// sfParser is the state of one parse: the input and the offset reached.
type sfParser struct {
	s string
	i int
}

func (p *sfParser) errorf(format string, args ...any) error {
	return fmt.Errorf("at offset %d: %s", p.i, fmt.Sprintf(format, args...))
}

func (p *sfParser) done() bool { return p.i >= len(p.s) }

func (p *sfParser) skipSP() {
	for p.i < len(p.s) && p.s[p.i] == ' ' {
		p.i++
	}
}

func (p *sfParser) skipOWS() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t') {
		p.i++
	}
}

// parseDictionary parses s as an RFC 8941 dictionary. An empty (or blank)
// s is an empty dictionary.
func parseDictionary(s string) ([]member, error) {
	p := sfParser{s: s}
	p.skipSP()
	if p.done() {
		return nil, nil
	}
	members := make([]member, 0, 1)
	for {
		if len(members) == maxMembers {
			return nil, p.errorf("more than %d dictionary members", maxMembers)
		}
		key, err := p.parseKey()
		if err != nil {
			return nil, err
		}
		m := member{key: key}
		if !p.done() && p.s[p.i] == '=' {
			p.i++
			start := p.i
			if !p.done() && p.s[p.i] == '(' {
				m.isList = true
				if m.list, err = p.parseInnerList(); err != nil {
					return nil, err
				}
			} else if m.val, err = p.parseBareItem(); err != nil {
				return nil, err
			}
			if m.params, err = p.parseParams(); err != nil {
				return nil, err
			}
			m.raw = s[start:p.i]
		} else {
			m.val = bareItem{kind: kindBoolean, flag: true}
			if m.params, err = p.parseParams(); err != nil {
				return nil, err
			}
		}
		members = append(members, m)
		p.skipOWS()
		if p.done() {
			return members, nil
		}
		if p.s[p.i] != ',' {
			return nil, p.errorf("expected ',' after dictionary member %q, found %q", key, p.s[p.i])
		}
		p.i++
		p.skipOWS()
		if p.done() {
			return nil, p.errorf("dictionary ends with ','")
		}
	}
}

// parseInnerList parses an inner list, "(" included, without its parameters.
func (p *sfParser) parseInnerList() ([]listItem, error) {
	p.i++ // "("
	var items []listItem
	for !p.done() {
		p.skipSP()
		if p.done() {
			break
		}
		if p.s[p.i] == ')' {
			p.i++
			return items, nil
		}
		if len(items) == maxListItems {
			return nil, p.errorf("more than %d items in an inner list", maxListItems)
		}
		v, err := p.parseBareItem()
		if err != nil {
			return nil, err
		}
		params, err := p.parseParams()
		if err != nil {
			return nil, err
		}
		if items == nil {
			items = make([]listItem, 0, 8)
		}
		items = append(items, listItem{val: v, params: params})
		if p.done() {
			break
		}
		if c := p.s[p.i]; c != ' ' && c != ')' {
			return nil, p.errorf("expected ' ' or ')' in inner list, found %q", c)
		}
	}
	return nil, p.errorf("inner list is not closed with ')'")
}

// parseParams parses zero or more ";key[=value]" parameters.
func (p *sfParser) parseParams() ([]param, error) {
	var params []param
	for !p.done() && p.s[p.i] == ';' {
		p.i++
		p.skipSP()
		if len(params) == maxParameters {
			return nil, p.errorf("more than %d parameters", maxParameters)
		}
		key, err := p.parseKey()
		if err != nil {
			return nil, err
		}
		v := bareItem{kind: kindBoolean, flag: true}
		if !p.done() && p.s[p.i] == '=' {
			p.i++
			if v, err = p.parseBareItem(); err != nil {
				return nil, err
			}
		}
		if params == nil {
			params = make([]param, 0, 4)
		}
		params = append(params, param{key: key, val: v})
	}
	return params, nil
}

// parseKey parses a dictionary or parameter key: lcalpha or "*", then
// lcalpha, DIGIT, "_", "-", "." or "*".
func (p *sfParser) parseKey() (string, error) {
	if p.done() {
		return "", p.errorf("expected a key, found the end")
	}
	if c := p.s[p.i]; !isLower(c) && c != '*' {
		return "", p.errorf("expected a key (lower-case letter or '*'), found %q", c)
	}
	start := p.i
	p.i++
	for p.i < len(p.s) {
		c := p.s[p.i]
		if !isLower(c) && !isDigit(c) && c != '_' && c != '-' && c != '.' && c != '*' {
			break
		}
		p.i++
	}
	return p.s[start:p.i], nil
}

// parseBareItem parses an integer, decimal, string, token, byte sequence or
// boolean.
func (p *sfParser) parseBareItem() (bareItem, error) {
	if p.done() {
		return bareItem{}, p.errorf("expected an item, found the end")
	}
	switch c := p.s[p.i]; {
	case c == '-' || isDigit(c):
		return p.parseNumber()
	case c == '"':
		return p.parseString()
	case c == '*' || isAlpha(c):
		return p.parseToken(), nil
	case c == ':':
		return p.parseByteSeq()
	case c == '?':
		return p.parseBoolean()
	default:
		return bareItem{}, p.errorf("expected an item, found %q", c)
	}
}

// parseNumber parses an integer (at most 15 digits) or a decimal (at most
// 12 integer and 3 fractional digits).
func (p *sfParser) parseNumber() (bareItem, error) {
	start := p.i
	neg := false
	if p.s[p.i] == '-' {
		neg = true
		p.i++
	}
	if p.done() || !isDigit(p.s[p.i]) {
		return bareItem{}, p.errorf("expected a digit")
	}
	digits := p.i
	dot := -1
	for p.i < len(p.s) {
		c := p.s[p.i]
		if isDigit(c) {
			p.i++
		} else if c == '.' && dot < 0 {
			if p.i-digits > 12 {
				return bareItem{}, p.errorf("decimal has more than 12 integer digits")
			}
			dot = p.i
			p.i++
		} else {
			break
		}
		if n := p.i - digits; dot < 0 && n > 15 {
			return bareItem{}, p.errorf("integer has more than 15 digits")
		} else if dot >= 0 && n > 16 {
			return bareItem{}, p.errorf("decimal is longer than 16 characters")
		}
	}
	if dot < 0 {
		var n int64
		for _, c := range []byte(p.s[digits:p.i]) {
			n = n*10 + int64(c-'0')
		}
		if neg {
			n = -n
		}
		return bareItem{kind: kindInteger, num: n}, nil
	}
	if dot == p.i-1 {
		return bareItem{}, p.errorf("decimal ends with '.'")
	}
	if p.i-dot-1 > 3 {
		return bareItem{}, p.errorf("decimal has more than 3 fractional digits")
	}
	return bareItem{kind: kindDecimal, str: p.s[start:p.i]}, nil
}

// parseString parses a quoted string; only \" and \\ are escapes.
func (p *sfParser) parseString() (bareItem, error) {
	p.i++ // opening quote
	start := p.i
	var buf []byte // only used once an escape is seen
	for p.i < len(p.s) {
		c := p.s[p.i]
		switch {
		case c == '\\':
			if p.i+1 >= len(p.s) {
				return bareItem{}, p.errorf("string ends inside an escape")
			}
			next := p.s[p.i+1]
			if next != '"' && next != '\\' {
				return bareItem{}, p.errorf("invalid escape \\%c in string", next)
			}
			if buf == nil {
				buf = make([]byte, 0, len(p.s)-start)
				buf = append(buf, p.s[start:p.i]...)
			}
			buf = append(buf, next)
			p.i += 2
		case c == '"':
			p.i++
			if buf == nil {
				return bareItem{kind: kindString, str: p.s[start : p.i-1]}, nil
			}
			return bareItem{kind: kindString, str: string(buf)}, nil
		case c < 0x20 || c >= 0x7f:
			return bareItem{}, p.errorf("invalid character %q in string", c)
		default:
			if buf != nil {
				buf = append(buf, c)
			}
			p.i++
		}
	}
	return bareItem{}, p.errorf("string is not closed with '\"'")
}

// parseToken parses a token; the caller has checked the first character.
func (p *sfParser) parseToken() bareItem {
	start := p.i
	p.i++
	for p.i < len(p.s) {
		c := p.s[p.i]
		if !isTchar(c) && c != ':' && c != '/' {
			break
		}
		p.i++
	}
	return bareItem{kind: kindToken, str: p.s[start:p.i]}
}

// parseByteSeq parses ":base64:". It checks that the text decodes (padding
// may be left out, as RFC 8941 asks parsers to tolerate) but does not
// decode it: see decodeByteSeq.
func (p *sfParser) parseByteSeq() (bareItem, error) {
	p.i++ // opening colon
	end := strings.IndexByte(p.s[p.i:], ':')
	if end < 0 {
		return bareItem{}, p.errorf("byte sequence is not closed with ':'")
	}
	text := p.s[p.i : p.i+end]
	pad := 0
	for j := 0; j < len(text); j++ {
		c := text[j]
		switch {
		case c == '=':
			pad++
		case pad > 0:
			return bareItem{}, p.errorf("byte sequence has '=' before its end")
		case !isAlpha(c) && !isDigit(c) && c != '+' && c != '/':
			return bareItem{}, p.errorf("invalid character %q in byte sequence", c)
		}
	}
	data := len(text) - pad
	if pad > 2 || data%4 == 1 || (pad > 0 && len(text)%4 != 0) {
		return bareItem{}, p.errorf("byte sequence is not valid base64")
	}
	p.i += end + 1
	return bareItem{kind: kindByteSeq, str: text}, nil
}

// parseBoolean parses "?1" or "?0".
func (p *sfParser) parseBoolean() (bareItem, error) {
	p.i++ // "?"
	if !p.done() {
		switch p.s[p.i] {
		case '1':
			p.i++
			return bareItem{kind: kindBoolean, flag: true}, nil
		case '0':
			p.i++
			return bareItem{kind: kindBoolean, flag: false}, nil
		}
	}
	return bareItem{}, p.errorf("boolean is not ?0 or ?1")
}

// decodeByteSeq decodes the base64 text of a parsed byte sequence into dst,
// which must be exactly as long as the decoded bytes; it reports whether it
// could. Padding is optional and non-zero trailing bits are tolerated, as
// RFC 8941 asks. It does not allocate.
func decodeByteSeq(dst []byte, text string) bool {
	text = strings.TrimRight(text, "=")
	if byteSeqLen(text) != len(dst) {
		return false
	}
	var acc uint32
	bits, j := 0, 0
	for i := 0; i < len(text); i++ {
		v, ok := base64Value(text[i])
		if !ok {
			return false
		}
		acc = acc<<6 | uint32(v)
		bits += 6
		if bits >= 8 {
			bits -= 8
			dst[j] = byte(acc >> bits)
			j++
		}
	}
	return j == len(dst)
}

// byteSeqLen is the number of bytes the base64 text of a parsed byte
// sequence decodes to.
func byteSeqLen(text string) int {
	return len(strings.TrimRight(text, "=")) * 6 / 8
}

// base64Value is the value of a standard base64 digit.
func base64Value(c byte) (byte, bool) {
	switch {
	case 'A' <= c && c <= 'Z':
		return c - 'A', true
	case 'a' <= c && c <= 'z':
		return c - 'a' + 26, true
	case '0' <= c && c <= '9':
		return c - '0' + 52, true
	case c == '+':
		return 62, true
	case c == '/':
		return 63, true
	}
	return 0, false
}

func isLower(c byte) bool { return 'a' <= c && c <= 'z' }
func isAlpha(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }
func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// isTchar reports whether c is an RFC 9110 token character.
func isTchar(c byte) bool {
	if isAlpha(c) || isDigit(c) {
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}
