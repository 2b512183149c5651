package signature

import (
	"errors"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/matryer/is"
)

// serializeDictionary writes members in RFC 8941 form (section 4.1), for
// checking the parser: byte sequences and decimals keep their text.
func serializeDictionary(members []member) string {
	var b strings.Builder
	for i, m := range members {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(m.key)
		switch {
		case m.isList:
			b.WriteString("=(")
			for j, it := range m.list {
				if j > 0 {
					b.WriteByte(' ')
				}
				serializeBareItem(&b, it.val)
				serializeParams(&b, it.params)
			}
			b.WriteByte(')')
		case m.val.kind == kindBoolean && m.val.flag:
		default:
			b.WriteByte('=')
			serializeBareItem(&b, m.val)
		}
		serializeParams(&b, m.params)
	}
	return b.String()
}

func serializeParams(b *strings.Builder, params []param) {
	for _, p := range params {
		b.WriteByte(';')
		b.WriteString(p.key)
		if p.val.kind == kindBoolean && p.val.flag {
			continue
		}
		b.WriteByte('=')
		serializeBareItem(b, p.val)
	}
}

func serializeBareItem(b *strings.Builder, it bareItem) {
	switch it.kind {
	case kindBoolean:
		if it.flag {
			b.WriteString("?1")
		} else {
			b.WriteString("?0")
		}
	case kindInteger:
		b.WriteString(strconv.FormatInt(it.num, 10))
	case kindDecimal, kindToken:
		b.WriteString(it.str)
	case kindString:
		b.WriteByte('"')
		for i := 0; i < len(it.str); i++ {
			if c := it.str[i]; c == '"' || c == '\\' {
				b.WriteByte('\\')
			}
			b.WriteByte(it.str[i])
		}
		b.WriteByte('"')
	case kindByteSeq:
		b.WriteByte(':')
		b.WriteString(it.str)
		b.WriteByte(':')
	}
}

func TestParseDictionary(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		input string
		want  string // serialized; "" with wantErr
		raw   []string
		err   string // a part of the error, if one is expected
	}{
		{name: "empty", input: "", want: ""},
		{name: "blank", input: "   ", want: ""},
		{name: "signature input",
			input: `sig1=("@method" "@path");created=1618884473;keyid="test-key"`,
			want:  `sig1=("@method" "@path");created=1618884473;keyid="test-key"`,
			raw:   []string{`("@method" "@path");created=1618884473;keyid="test-key"`}},
		{name: "odd whitespace kept in raw",
			input: ` a=(  "x"   "y" );p=1 ,	b=:AAAA:; q=?0  `,
			want:  `a=("x" "y");p=1, b=:AAAA:;q=?0`,
			raw:   []string{`(  "x"   "y" );p=1`, `:AAAA:; q=?0`}},
		{name: "bare keys are true", input: `a, b;x=1, c=?1`, want: `a, b;x=1, c`, raw: []string{"", "", "?1"}},
		{name: "all item types",
			input: `i=-42, d=3.140, s="a \"q\" \\ b", t=*tok:en/x, y=:YWJj:, f=?0, e=()`,
			want:  `i=-42, d=3.140, s="a \"q\" \\ b", t=*tok:en/x, y=:YWJj:, f=?0, e=()`},
		{name: "items with parameters in a list", input: `l=(a;x=1 "b";y;z=?0);p`, want: `l=(a;x=1 "b";y;z=?0);p`},
		{name: "duplicate keys are kept", input: `a=1, a=2;p=1;p=2`, want: `a=1, a=2;p=1;p=2`},
		{name: "longest integer", input: `a=999999999999999`, want: `a=999999999999999`},
		{name: "longest decimal", input: `a=-999999999999.999`, want: `a=-999999999999.999`},
		{name: "unpadded byte sequence", input: `a=:YWI:`, want: `a=:YWI:`},
		{name: "empty byte sequence", input: `a=::`, want: `a=::`},
		{name: "leading zeros", input: `a=007`, want: `a=7`},

		{name: "trailing comma", input: `a=1,`, err: "ends with ','"},
		{name: "missing comma", input: `a=1 b=2`, err: "expected ','"},
		{name: "upper-case key", input: `A=1`, err: "expected a key"},
		{name: "digit key", input: `1=1`, err: "expected a key"},
		{name: "empty value", input: `a=`, err: "expected an item"},
		{name: "integer too long", input: `a=1000000000000000`, err: "more than 15 digits"},
		{name: "decimal integer part too long", input: `a=1234567890123.5`, err: "more than 12 integer digits"},
		{name: "decimal fraction too long", input: `a=1.2345`, err: "more than 3 fractional digits"},
		{name: "decimal ends with dot", input: `a=1.`, err: "ends with '.'"},
		{name: "lone minus", input: `a=-`, err: "expected a digit"},
		{name: "minus letter", input: `a=-x`, err: "expected a digit"},
		{name: "unterminated string", input: `a="abc`, err: "not closed"},
		{name: "bad escape", input: `a="a\n"`, err: "invalid escape"},
		{name: "escape at end", input: `a="a\`, err: "ends inside an escape"},
		{name: "control character in string", input: "a=\"a\tb\"", err: "invalid character"},
		{name: "non-ASCII in string", input: "a=\"é\"", err: "invalid character"},
		{name: "unterminated byte sequence", input: `a=:YWJj`, err: "not closed"},
		{name: "bad byte sequence character", input: `a=:YW-j:`, err: "invalid character"},
		{name: "byte sequence with inner padding", input: `a=:YW=j:`, err: "'=' before its end"},
		{name: "byte sequence with wrong padding", input: `a=:YWJ==:`, err: "not valid base64"},
		{name: "byte sequence one char over", input: `a=:YWJjZ:`, err: "not valid base64"},
		{name: "bad boolean", input: `a=?2`, err: "boolean"},
		{name: "boolean cut", input: `a=?`, err: "boolean"},
		{name: "unclosed inner list", input: `a=("x" "y"`, err: "not closed with ')'"},
		{name: "inner list without space", input: `a=("x""y")`, err: "expected ' ' or ')'"},
		{name: "tab in inner list", input: "a=(\"x\"\t\"y\")", err: "expected ' ' or ')'"},
		{name: "parameter without key", input: `a=1;`, err: "expected a key"},
		{name: "parameter with upper-case key", input: `a=1;K=2`, err: "expected a key"},
		{name: "nested inner list", input: `a=((1))`, err: "expected an item"},
		{name: "leading tab", input: "\ta=1", err: "expected a key"},
		{name: "garbage after member", input: `a=1;b=2"`, err: "expected ','"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			got, err := parseDictionary(tt.input)
			if tt.err != "" {
				is.True(err != nil) // parse must fail
				is.True(strings.Contains(err.Error(), tt.err))
				return
			}
			is.NoErr(err)
			is.Equal(serializeDictionary(got), tt.want)
			if tt.raw != nil {
				is.Equal(len(got), len(tt.raw))
				for i := range got {
					is.Equal(got[i].raw, tt.raw[i])
				}
			}
		})
	}
}

func TestDecodeByteSeq(t *testing.T) {
	t.Parallel()
	tests := []struct {
		text string
		want string
		ok   bool
	}{
		{text: "", want: "", ok: true},
		{text: "YQ==", want: "a", ok: true},
		{text: "YQ", want: "a", ok: true},
		{text: "YR", want: "a", ok: true}, // non-zero trailing bits tolerated
		{text: "YWI=", want: "ab", ok: true},
		{text: "YWJj", want: "abc", ok: true},
		{text: "YWJjZA", want: "abcd", ok: true},
		{text: "YW-j"},
	}
	for _, tt := range tests {
		t.Run(tt.text, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			dst := make([]byte, len(tt.want))
			is.Equal(decodeByteSeq(dst, tt.text), tt.ok)
			if tt.ok {
				is.Equal(string(dst), tt.want)
			}
			is.True(!decodeByteSeq(make([]byte, len(tt.want)+1), tt.text)) // wrong size refused
		})
	}
}

// FuzzParseSignatureHeaders feeds arbitrary Signature-Input, Signature and
// Content-Digest values to the parser and the verifier. Neither may panic;
// whatever parses must serialize and parse back to the same thing; every
// verification error must wrap exactly one of ErrMissing and ErrInvalid.
func FuzzParseSignatureHeaders(f *testing.F) {
	vf := loadVectors(f)
	for _, s := range vf.Signatures {
		f.Add(s.SignatureInput, s.Signature, s.Headers["Content-Digest"])
	}
	f.Add(`a=(), b=?0;x, c=-1.5;y="\"", d=*t/k:n;z=:AA==:`, `a=::`, `sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:, md5=x`)
	f.Add(`dispatch=("@method" "@path" "@query" "@authority" "content-type" "content-digest" "x");created=1700000000;keyid="default";expires=1700000100`, `dispatch=:YQ:`, ``)
	f.Add(``, ``, ``)

	first := vf.Signatures[0]
	pub := vf.PublicKey(f, first.Key)
	v := NewVerifier(pub, WithClock(unix(vecCreated+60)))
	f.Fuzz(func(t *testing.T, input, sig, digest string) {
		for _, field := range []string{input, sig, digest} {
			members, err := parseDictionary(field)
			if err != nil {
				continue
			}
			again, err := parseDictionary(serializeDictionary(members))
			if err != nil {
				t.Fatalf("serialization of %q does not parse: %v", field, err)
			}
			if a, b := serializeDictionary(members), serializeDictionary(again); a != b {
				t.Fatalf("round trip of %q: %q then %q", field, a, b)
			}
			for _, m := range members {
				if m.val.kind == kindByteSeq {
					// A parsed byte sequence always decodes.
					if !decodeByteSeq(make([]byte, byteSeqLen(m.val.str)), m.val.str) {
						t.Fatalf("byte sequence %q parsed but does not decode", m.val.str)
					}
				}
			}
		}

		r := httptest.NewRequest(first.Method, first.URL, nil)
		r.Host = first.Headers["Host"]
		r.Header.Set("Content-Type", first.Headers["Content-Type"])
		r.Header["Signature-Input"] = []string{input}
		r.Header["Signature"] = []string{sig}
		r.Header["Content-Digest"] = []string{digest}
		err := v.Verify(r, []byte(first.Body))
		if err == nil {
			return // only a real signature of this request gets here
		}
		if errors.Is(err, ErrMissing) == errors.Is(err, ErrInvalid) {
			t.Fatalf("error %q wraps neither or both sentinels", err)
		}
		if !strings.HasPrefix(err.Error(), "signature: ") {
			t.Fatalf("error %q lacks the package prefix", err)
		}
	})
}
