package signature

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/matryer/is"
)

// bundle is the fresh state of one verifier test.
type bundle struct {
	priv     ed25519.PrivateKey
	now      time.Time
	created  int64
	verifier *Verifier
}

func setup(t *testing.T) *bundle {
	t.Helper()
	vf := loadVectors(t)
	b := &bundle{
		priv: vf.PrivateKey(t, "rfc9421_test_key_ed25519"),
		now:  time.Unix(vecCreated+60, 0),
	}
	b.created = b.now.Unix() - 10
	b.verifier = NewVerifier(b.priv.Public().(ed25519.PublicKey), WithClock(func() time.Time { return b.now }))
	return b
}

const testBody = `{"hello": "world"}`

// request is a server-side request for a Run call behind a path prefix.
func (b *bundle) request(body string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/app/dispatch.sdk.v1.FunctionService/Run?x=1", strings.NewReader(body))
	r.Host = "example.com:8000"
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Content-Digest", ContentDigest([]byte(body)))
	return r
}

// signAs signs r with key under label, with the signature parameters member
// value input (inner list and parameters, as sent), whatever they say.
func signAs(t *testing.T, key ed25519.PrivateKey, r *http.Request, label, input string) string {
	t.Helper()
	members, err := parseDictionary(label + "=" + input)
	if err != nil || len(members) != 1 || !members[0].isList {
		t.Fatalf("test input %q does not parse as one inner list: %v", input, err)
	}
	base, err := appendSignatureBase(nil, r, members[0].list, members[0].raw)
	if err != nil {
		// The verifier must refuse these before it checks the signature:
		// sign something else.
		t.Logf("no signature base for %q (%v): signing the input alone", input, err)
		base = []byte(input)
	}
	return label + "=:" + base64.StdEncoding.EncodeToString(ed25519.Sign(key, base)) + ":"
}

func TestVerify(t *testing.T) {
	t.Parallel()
	const dispatchList = `("@method" "@path" "@authority" "content-type" "content-digest")`
	// params are the Dispatch signer's parameters for created.
	params := func(created int64) string {
		return fmt.Sprintf(`;created=%d;keyid="default";alg="ed25519"`, created)
	}
	tests := []struct {
		name string
		// input builds the Signature-Input member value to sign; empty
		// means the Dispatch signer's.
		input func(b *bundle) string
		// label defaults to "dispatch".
		label string
		// before changes the request before it is signed.
		before func(b *bundle, r *http.Request)
		// after changes the request (or the headers) after it is signed.
		after func(b *bundle, r *http.Request)
		// body is the body passed to Verify; empty means testBody.
		body string
		want error
		msg  string // a part of the message
	}{
		{name: "dispatch signature"},
		{name: "reordered components", input: func(b *bundle) string {
			return `("content-digest" "@authority" "content-type" "@path" "@method")` + params(b.created)
		}},
		{name: "reordered parameters", input: func(b *bundle) string {
			return dispatchList + fmt.Sprintf(`;alg="ed25519";keyid="default";created=%d`, b.created)
		}},
		{name: "no alg", input: func(b *bundle) string {
			return dispatchList + fmt.Sprintf(`;created=%d;keyid="default"`, b.created)
		}},
		{name: "another label", label: "sig1"},
		{name: "nonce, tag and unknown parameters are ignored", input: func(b *bundle) string {
			return dispatchList + params(b.created) + `;nonce="abc";tag="dispatch";x-ext=?1`
		}},
		{name: "whitespace in the inner list is signed as sent", input: func(b *bundle) string {
			return `( "@method"  "@path" "@authority" "content-type" "content-digest" );created=` + fmt.Sprint(b.created) + `; keyid="default"`
		}},
		{name: "extra covered header", input: func(b *bundle) string {
			return `("@method" "@path" "@authority" "content-type" "content-digest" "date")` + params(b.created)
		}, before: func(b *bundle, r *http.Request) { r.Header.Set("Date", "Tue, 14 Nov 2023 22:14:20 GMT") }},
		{name: "extra covered header with two lines", input: func(b *bundle) string {
			return `("@method" "@path" "@authority" "content-type" "content-digest" "x-trace")` + params(b.created)
		}, before: func(b *bundle, r *http.Request) {
			r.Header.Add("X-Trace", " a ")
			r.Header.Add("X-Trace", "b")
		}},
		{name: "extra covered header changed", input: func(b *bundle) string {
			return `("@method" "@path" "@authority" "content-type" "content-digest" "date")` + params(b.created)
		}, before: func(b *bundle, r *http.Request) { r.Header.Set("Date", "Tue, 14 Nov 2023 22:14:20 GMT") },
			after: func(b *bundle, r *http.Request) { r.Header.Set("Date", "Tue, 14 Nov 2023 22:14:21 GMT") },
			want:  ErrInvalid, msg: "does not verify"},
		{name: "covered header absent", input: func(b *bundle) string {
			return `("@method" "@path" "@authority" "content-type" "content-digest" "date")` + params(b.created)
		}, before: func(b *bundle, r *http.Request) { r.Header.Set("Date", "x") },
			after: func(b *bundle, r *http.Request) { r.Header.Del("Date") },
			want:  ErrInvalid, msg: `covered component "date" is not in the request`},
		{name: "@query covered", input: func(b *bundle) string {
			return `("@method" "@path" "@query" "@authority" "content-type" "content-digest")` + params(b.created)
		}},
		{name: "@query covered and changed", input: func(b *bundle) string {
			return `("@method" "@path" "@query" "@authority" "content-type" "content-digest")` + params(b.created)
		}, after: func(b *bundle, r *http.Request) { r.RequestURI = "/app/dispatch.sdk.v1.FunctionService/Run?x=2" },
			want: ErrInvalid, msg: "does not verify"},
		{name: "expires in the future", input: func(b *bundle) string {
			return dispatchList + params(b.created) + fmt.Sprintf(";expires=%d", b.now.Unix()+1)
		}},
		{name: "expires in the past", input: func(b *bundle) string {
			return dispatchList + params(b.created) + fmt.Sprintf(";expires=%d", b.now.Unix()-1)
		}, want: ErrInvalid, msg: "signature: signature expired at 1700000059 (1s ago)"},
		{name: "expires not an integer", input: func(b *bundle) string {
			return dispatchList + params(b.created) + `;expires="soon"`
		}, want: ErrInvalid, msg: `expires is "soon"`},
		{name: "alg rsa", input: func(b *bundle) string {
			return dispatchList + fmt.Sprintf(`;created=%d;keyid="default";alg="rsa-v1_5-sha256"`, b.created)
		}, want: ErrInvalid, msg: `signature: alg is "rsa-v1_5-sha256", want "ed25519"`},
		{name: "alg as a token", input: func(b *bundle) string {
			return dispatchList + fmt.Sprintf(`;created=%d;keyid="default";alg=ed25519`, b.created)
		}, want: ErrInvalid, msg: `alg is the token ed25519`},
		{name: "missing created", input: func(b *bundle) string {
			return dispatchList + `;keyid="default";alg="ed25519"`
		}, want: ErrInvalid, msg: "signature: signature has no created parameter"},
		{name: "created as a string", input: func(b *bundle) string {
			return dispatchList + fmt.Sprintf(`;created="%d";keyid="default"`, b.created)
		}, want: ErrInvalid, msg: "created is "},
		{name: "created as a decimal", input: func(b *bundle) string {
			return dispatchList + fmt.Sprintf(`;created=%d.5;keyid="default"`, b.created)
		}, want: ErrInvalid, msg: "created is the decimal"},
		{name: "created twice", input: func(b *bundle) string {
			return dispatchList + params(b.created) + fmt.Sprintf(";created=%d", b.created-1000)
		}, want: ErrInvalid, msg: "signature: signature parameter created appears more than once"},
		{name: "keyid missing", input: func(b *bundle) string {
			return dispatchList + fmt.Sprintf(`;created=%d;alg="ed25519"`, b.created)
		}, want: ErrInvalid, msg: `signature has no keyid parameter, want keyid="default"`},
		{name: "keyid other", input: func(b *bundle) string {
			return dispatchList + fmt.Sprintf(`;created=%d;keyid="other"`, b.created)
		}, want: ErrInvalid, msg: `keyid is "other", want "default"`},
		{name: "keyid as a token", input: func(b *bundle) string {
			return dispatchList + fmt.Sprintf(`;created=%d;keyid=default`, b.created)
		}, want: ErrInvalid, msg: `keyid is the token default`},
		{name: "content-digest not covered", input: func(b *bundle) string {
			return `("@method" "@path" "@authority" "content-type")` + params(b.created)
		}, want: ErrInvalid, msg: `signature: Signature-Input does not cover "content-digest"`},
		{name: "@authority not covered", input: func(b *bundle) string {
			return `("@method" "@path" "content-type" "content-digest")` + params(b.created)
		}, want: ErrInvalid, msg: `does not cover "@authority"`},
		{name: "@method not covered", input: func(b *bundle) string {
			return `("@path" "@authority" "content-type" "content-digest")` + params(b.created)
		}, want: ErrInvalid, msg: `does not cover "@method"`},
		{name: "nothing covered", input: func(b *bundle) string {
			return `()` + params(b.created)
		}, want: ErrInvalid, msg: `does not cover "@method"`},
		{name: "upper-case field name", input: func(b *bundle) string {
			return `("@method" "@path" "@authority" "Content-Type" "content-digest")` + params(b.created)
		}, want: ErrInvalid, msg: `does not cover "content-type"`},
		{name: "component covered twice", input: func(b *bundle) string {
			return `("@method" "@path" "@authority" "content-type" "content-digest" "@path")` + params(b.created)
		}, want: ErrInvalid, msg: `component "@path" is covered more than once`},
		{name: "component with parameters", input: func(b *bundle) string {
			return `("@method" "@path" "@authority" "content-type";sf "content-digest")` + params(b.created)
		}, want: ErrInvalid, msg: `covered component "content-type" has parameters (;sf)`},
		{name: "unsupported derived component", input: func(b *bundle) string {
			return `("@method" "@path" "@authority" "content-type" "content-digest" "@scheme")` + params(b.created)
		}, want: ErrInvalid, msg: `covered component "@scheme" is not supported`},
		{name: "two signatures in Signature-Input", after: func(b *bundle, r *http.Request) {
			r.Header.Set("Signature-Input", r.Header.Get("Signature-Input")+`, other=("@method");created=1`)
		}, want: ErrInvalid, msg: `signature: Signature-Input has 2 signatures ("dispatch", "other"), want exactly one`},
		{name: "two Signature-Input lines", after: func(b *bundle, r *http.Request) {
			r.Header.Add("Signature-Input", r.Header.Get("Signature-Input"))
		}, want: ErrInvalid, msg: `Signature-Input has 2 signatures ("dispatch", "dispatch")`},
		{name: "two signatures in Signature", after: func(b *bundle, r *http.Request) {
			r.Header.Set("Signature", r.Header.Get("Signature")+", other=:AAAA:")
		}, want: ErrInvalid, msg: `Signature has 2 signatures`},
		{name: "two Signature lines", after: func(b *bundle, r *http.Request) {
			r.Header.Add("Signature", r.Header.Get("Signature"))
		}, want: ErrInvalid, msg: `Signature has 2 signatures`},
		{name: "no signature headers", after: func(b *bundle, r *http.Request) {
			r.Header.Del("Signature")
			r.Header.Del("Signature-Input")
		}, want: ErrMissing, msg: "signature: request has no Signature-Input header"},
		{name: "no Signature", after: func(b *bundle, r *http.Request) { r.Header.Del("Signature") },
			want: ErrMissing, msg: "signature: request has no Signature header"},
		{name: "no Signature-Input", after: func(b *bundle, r *http.Request) { r.Header.Del("Signature-Input") },
			want: ErrMissing, msg: "signature: request has no Signature-Input header"},
		{name: "empty Signature-Input", after: func(b *bundle, r *http.Request) { r.Header.Set("Signature-Input", " ") },
			want: ErrMissing, msg: "signature: Signature-Input header is empty"},
		{name: "labels differ", after: func(b *bundle, r *http.Request) {
			r.Header.Set("Signature", "other"+strings.TrimPrefix(r.Header.Get("Signature"), "dispatch"))
		}, want: ErrMissing, msg: `signature: Signature has label "other" but Signature-Input has "dispatch"`},
		{name: "malformed Signature-Input", after: func(b *bundle, r *http.Request) {
			r.Header.Set("Signature-Input", `dispatch=("@method" "@path"`)
		}, want: ErrMissing, msg: "signature: Signature-Input is not an RFC 8941 dictionary: at offset 27: inner list is not closed with ')'"},
		{name: "malformed Signature", after: func(b *bundle, r *http.Request) {
			r.Header.Set("Signature", `dispatch=:not base64!:`)
		}, want: ErrMissing, msg: "signature: Signature is not an RFC 8941 dictionary"},
		{name: "Signature-Input not an inner list", after: func(b *bundle, r *http.Request) {
			r.Header.Set("Signature-Input", `dispatch="@method"`)
		}, want: ErrMissing, msg: `Signature-Input "dispatch" is a string, want an inner list`},
		{name: "component as a token", after: func(b *bundle, r *http.Request) {
			r.Header.Set("Signature-Input", strings.Replace(r.Header.Get("Signature-Input"), `"content-type"`, `content-type`, 1))
		}, want: ErrMissing, msg: `covered component 4 of Signature-Input "dispatch" is a token, want a string`},
		{name: "Signature not a byte sequence", after: func(b *bundle, r *http.Request) {
			r.Header.Set("Signature", `dispatch="abc"`)
		}, want: ErrMissing, msg: `Signature "dispatch" is a string, want a byte sequence`},
		{name: "Signature too short", after: func(b *bundle, r *http.Request) {
			r.Header.Set("Signature", `dispatch=:AAAA:`)
		}, want: ErrInvalid, msg: `signature: Signature "dispatch" is 3 bytes, want 64`},
		{name: "signed by another key", before: func(b *bundle, r *http.Request) {
			b.priv = ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
		}, want: ErrInvalid, msg: `signature: signature "dispatch" does not verify with the verification key`},
		{name: "sha-256 digest", before: func(b *bundle, r *http.Request) {
			r.Header.Set("Content-Digest", "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:")
		}},
		{name: "unpadded digest", before: func(b *bundle, r *http.Request) {
			r.Header.Set("Content-Digest", "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE:")
		}},
		{name: "only an unknown digest", before: func(b *bundle, r *http.Request) {
			r.Header.Set("Content-Digest", "md5=:AAAA:")
		}, want: ErrInvalid, msg: "signature: Content-Digest has no sha-512 or sha-256 digest"},
		{name: "digest of the wrong size", before: func(b *bundle, r *http.Request) {
			r.Header.Set("Content-Digest", "sha-512=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:")
		}, want: ErrInvalid, msg: "signature: Content-Digest sha-512 is 32 bytes, want 64"},
		{name: "malformed digest", before: func(b *bundle, r *http.Request) {
			r.Header.Set("Content-Digest", "sha-512=")
		}, want: ErrInvalid, msg: "signature: Content-Digest is not an RFC 8941 dictionary"},
		{name: "Content-Digest removed", after: func(b *bundle, r *http.Request) { r.Header.Del("Content-Digest") },
			want: ErrInvalid, msg: `covered component "content-digest" is not in the request`},
		{name: "tampered body", body: `{"hello": "mallory"}`,
			want: ErrInvalid, msg: "signature: Content-Digest sha-512 does not match the body (20 bytes)"},
		{name: "tampered Content-Digest", after: func(b *bundle, r *http.Request) {
			r.Header.Set("Content-Digest", ContentDigest([]byte(`{"hello": "mallory"}`)))
		}, body: `{"hello": "mallory"}`, want: ErrInvalid, msg: "does not verify"},
		{name: "tampered Content-Type", after: func(b *bundle, r *http.Request) { r.Header.Set("Content-Type", "application/proto") },
			want: ErrInvalid, msg: "does not verify"},
		{name: "Content-Type removed", after: func(b *bundle, r *http.Request) { r.Header.Del("Content-Type") },
			want: ErrInvalid, msg: `covered component "content-type" is not in the request`},
		{name: "tampered method", after: func(b *bundle, r *http.Request) { r.Method = http.MethodPut },
			want: ErrInvalid, msg: "does not verify"},
		{name: "tampered path", after: func(b *bundle, r *http.Request) {
			r.RequestURI = "/app/dispatch.sdk.v1.FunctionService/Other?x=1"
		}, want: ErrInvalid, msg: "does not verify"},
		{name: "path prefix stripped from URL.Path", after: func(b *bundle, r *http.Request) {
			r.URL.Path = "/dispatch.sdk.v1.FunctionService/Run"
			r.URL.RawPath = ""
		}},
		{name: "tampered authority", after: func(b *bundle, r *http.Request) { r.Host = "example.org:8000" },
			want: ErrInvalid, msg: "does not verify"},
		{name: "tampered port", after: func(b *bundle, r *http.Request) { r.Host = "example.com" },
			want: ErrInvalid, msg: "does not verify"},
		{name: "authority in upper case", after: func(b *bundle, r *http.Request) { r.Host = "EXAMPLE.com:8000" }},
		{name: "query changed (not covered)", after: func(b *bundle, r *http.Request) {
			r.RequestURI = "/app/dispatch.sdk.v1.FunctionService/Run?x=2&y=3"
		}},
		{name: "line break in a covered value", after: func(b *bundle, r *http.Request) {
			r.Header["Content-Type"] = []string{"application/json\n\"@method\": GET"}
		}, want: ErrInvalid, msg: `the value of covered component "content-type" contains a line break`},
		{name: "too old", before: func(b *bundle, r *http.Request) { b.created = b.now.Unix() - 301 },
			want: ErrInvalid, msg: "signature: created 1699999759 is 5m1s old (limit 5m0s)"},
		{name: "in the future", before: func(b *bundle, r *http.Request) { b.created = b.now.Unix() + 6 },
			want: ErrInvalid, msg: "signature: created 1700000066 is 6s in the future (limit 5s)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			b := setup(t)
			r := b.request(testBody)
			if tt.before != nil {
				tt.before(b, r)
			}
			label := tt.label
			if label == "" {
				label = "dispatch"
			}
			input := dispatchList + params(b.created)
			if tt.input != nil {
				input = tt.input(b)
			}
			r.Header.Set("Signature-Input", label+"="+input)
			r.Header.Set("Signature", signAs(t, b.priv, r, label, input))
			if tt.after != nil {
				tt.after(b, r)
			}
			body := tt.body
			if body == "" {
				body = testBody
			}
			err := b.verifier.Verify(r, []byte(body))
			if tt.want == nil {
				is.NoErr(err)
				return
			}
			is.True(err != nil) // request accepted
			t.Log(err)
			is.True(errors.Is(err, tt.want))                       // wraps the right sentinel
			is.True(!errors.Is(err, otherSentinel(tt.want)))       // and not the other one
			is.True(strings.HasPrefix(err.Error(), "signature: ")) // package prefix
			is.True(strings.Contains(err.Error(), tt.msg))         // says what is wrong
		})
	}
}

func otherSentinel(err error) error {
	if err == ErrMissing {
		return ErrInvalid
	}
	return ErrMissing
}

// TestVerifyRFCB26Components checks that the RFC's B.2.6 signature, which
// verifies cryptographically, would be refused for what it covers even if
// its keyid were "default".
func TestVerifyRFCB26Components(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	s := loadVectors(t).Signature(t, vecRFCB26)
	members, err := parseDictionary(s.SignatureInput)
	is.NoErr(err)
	err = checkComponents(members[0].list)
	is.True(errors.Is(err, ErrInvalid))
	is.True(strings.Contains(err.Error(), `does not cover "content-digest"`))
}

func TestVerifierConfiguration(t *testing.T) {
	t.Parallel()
	vf := loadVectors(t)
	s := vf.Signature(t, vecDispatch)
	pub := vf.PublicKey(t, s.Key)
	tests := []struct {
		name     string
		verifier *Verifier
		want     error // nil, ErrInvalid, or errAny for a configuration error
		msg      string
	}{
		{name: "longer max age", verifier: NewVerifier(pub, WithClock(unix(vecCreated+3600)), WithMaxAge(time.Hour))},
		{name: "max age exceeded", verifier: NewVerifier(pub, WithClock(unix(vecCreated+3601)), WithMaxAge(time.Hour)),
			want: ErrInvalid, msg: "signature: created 1700000000 is 1h0m1s old (limit 1h0m0s)"},
		{name: "larger skew", verifier: NewVerifier(pub, WithClock(unix(vecCreated-60)), WithMaxFutureSkew(time.Minute))},
		{name: "non-positive limits keep the defaults", verifier: NewVerifier(pub, WithClock(unix(vecCreated+301)), WithMaxAge(0), WithMaxFutureSkew(-1)),
			want: ErrInvalid, msg: "(limit 5m0s)"},
		{name: "nil clock keeps time.Now", verifier: NewVerifier(pub, WithClock(nil)),
			want: ErrInvalid, msg: "old (limit 5m0s)"},
		{name: "short key", verifier: NewVerifier(pub[:31], WithClock(unix(vecCreated))),
			want: errAny, msg: "signature: verification key is 31 bytes, want an Ed25519 public key of 32 bytes"},
		{name: "zero Verifier", verifier: &Verifier{},
			want: errAny, msg: "signature: verification key is 0 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			err := tt.verifier.Verify(s.Request(t, true, true), []byte(s.Body))
			switch tt.want {
			case nil:
				is.NoErr(err)
				return
			case errAny:
				is.True(err != nil)
				is.True(!errors.Is(err, ErrInvalid) && !errors.Is(err, ErrMissing)) // a configuration error
			default:
				is.True(errors.Is(err, tt.want))
			}
			is.True(strings.Contains(err.Error(), tt.msg))
		})
	}
}

var errAny = errors.New("any error")

func TestSignErrors(t *testing.T) {
	t.Parallel()
	key := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	tests := []struct {
		name   string
		signer *Signer
		setup  func(r *http.Request)
		msg    string
	}{
		{name: "no Content-Type", signer: NewSigner(key), setup: func(r *http.Request) { r.Header.Del("Content-Type") },
			msg: "signature: cannot sign a request without a Content-Type header"},
		{name: "short key", signer: NewSigner(key[:32]),
			msg: "signature: signing key is 32 bytes, want an Ed25519 private key of 64 bytes"},
		{name: "zero Signer", signer: &Signer{}, msg: "signature: signing key is 0 bytes"},
		{name: "line break in Content-Type", signer: NewSigner(key), setup: func(r *http.Request) {
			r.Header["Content-Type"] = []string{"a\nb"}
		}, msg: `signature: cannot sign: the value of covered component "content-type" contains a line break`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			r, err := http.NewRequest(http.MethodPost, "http://example.com/run", nil)
			is.NoErr(err)
			r.Header.Set("Content-Type", "application/proto")
			if tt.setup != nil {
				tt.setup(r)
			}
			err = tt.signer.Sign(r, nil)
			is.True(err != nil)
			is.True(strings.HasPrefix(err.Error(), tt.msg))
			is.Equal(r.Header.Get("Signature"), "") // nothing signed
		})
	}
}

func TestSignHeaderlessRequest(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	r := &http.Request{Method: http.MethodPost, URL: mustParseURL(t, "http://Example.COM:80")}
	err := NewSigner(ed25519.NewKeyFromSeed(make([]byte, 32))).Sign(r, nil)
	is.True(err != nil) // no Content-Type
	r.Header.Set("Content-Type", "application/proto")
	is.NoErr(NewSigner(ed25519.NewKeyFromSeed(make([]byte, 32))).Sign(r, nil))
	path, err := componentValue(r, "@path")
	is.NoErr(err)
	is.Equal(path, "/") // empty path signs as "/"
	authority, err := componentValue(r, "@authority")
	is.NoErr(err)
	is.Equal(authority, "example.com:80") // lower-cased, port kept
}
