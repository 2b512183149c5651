package signature

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/matryer/is"
)

// vectorFile is shared/vectors/signatures.json.
type vectorFile struct {
	Keys                    map[string]vectorKey `json:"keys"`
	InvalidVerificationKeys []string             `json:"invalid_verification_keys"`
	Digests                 []struct {
		Body   string `json:"body"`
		SHA512 string `json:"sha-512"`
		SHA256 string `json:"sha-256"`
	} `json:"digests"`
	Signatures []vectorSignature `json:"signatures"`
}

type vectorKey struct {
	PublicPEM         string `json:"public_pem"`
	PublicPEMEscaped  string `json:"public_pem_escaped_one_line"`
	PublicBase64      string `json:"public_base64_raw"`
	PublicHex         string `json:"public_hex"`
	PrivatePEM        string `json:"private_pem"`
	PrivateSeedHex    string `json:"private_seed_hex"`
	PrivateSeedBase64 string `json:"private_seed_base64"`
}

type vectorSignature struct {
	Name           string            `json:"name"`
	Key            string            `json:"key"`
	Method         string            `json:"method"`
	URL            string            `json:"url"`
	Headers        map[string]string `json:"headers"`
	Body           string            `json:"body"`
	SignatureBase  string            `json:"signature_base"`
	SignatureInput string            `json:"Signature-Input"`
	Signature      string            `json:"Signature"`
	Expect         string            `json:"expect"`
}

const vectorsPath = "shared/vectors/signatures.json"

// findVectors walks up from the working directory (the package directory)
// to the first ancestor that holds shared/vectors/signatures.json. In this
// repository's layout and in CI, shared/ sits beside the repository clone,
// so it is found three levels up (../../../shared from here).
func findVectors(tb testing.TB) string {
	tb.Helper()
	dir, err := os.Getwd()
	if err != nil {
		tb.Fatalf("cannot get the working directory: %v", err)
	}
	for {
		candidate := filepath.Join(dir, vectorsPath)
		if _, err := os.Stat(candidate); err == nil {
			return candidate
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			tb.Fatalf("cannot find %s in any parent of the package directory: the signature test vectors live in shared/ beside the repository (../../../%s from internal/signature); copy shared/ there", vectorsPath, vectorsPath)
		}
		dir = parent
	}
}

func loadVectors(tb testing.TB) *vectorFile {
	tb.Helper()
	path := findVectors(tb)
	data, err := os.ReadFile(path)
	if err != nil {
		tb.Fatalf("reading vectors: %v", err)
	}
	var v vectorFile
	if err := json.Unmarshal(data, &v); err != nil {
		tb.Fatalf("decoding %s: %v", path, err)
	}
	if len(v.Signatures) == 0 || len(v.Keys) == 0 || len(v.Digests) == 0 {
		tb.Fatalf("%s has no signatures, keys or digests", path)
	}
	return &v
}

func (vf *vectorFile) signature(tb testing.TB, name string) vectorSignature {
	tb.Helper()
	for _, s := range vf.Signatures {
		if s.Name == name {
			return s
		}
	}
	tb.Fatalf("no signature vector named %q", name)
	return vectorSignature{}
}

// publicKey is the public key of a named vector key, from its hex form (not
// through ParsePublicKey, which is under test elsewhere).
func (vf *vectorFile) publicKey(tb testing.TB, name string) ed25519.PublicKey {
	tb.Helper()
	k, ok := vf.Keys[name]
	if !ok {
		tb.Fatalf("no vector key %q", name)
	}
	raw, err := base64.StdEncoding.DecodeString(k.PublicBase64)
	if err != nil || len(raw) != ed25519.PublicKeySize {
		tb.Fatalf("vector key %q: bad public_base64_raw", name)
	}
	if k.PublicHex != "" && hex.EncodeToString(raw) != k.PublicHex {
		tb.Fatalf("vector key %q: public_hex and public_base64_raw differ", name)
	}
	return raw
}

func (vf *vectorFile) privateKey(tb testing.TB, name string) ed25519.PrivateKey {
	tb.Helper()
	k, ok := vf.Keys[name]
	if !ok {
		tb.Fatalf("no vector key %q", name)
	}
	seed, err := base64.StdEncoding.DecodeString(k.PrivateSeedBase64)
	if err != nil || len(seed) != ed25519.SeedSize {
		tb.Fatalf("vector key %q: bad private_seed_base64", name)
	}
	return ed25519.NewKeyFromSeed(seed)
}

// request builds the vector's request, server side (as a handler receives
// it, RequestURI set) or client side (as http.NewRequest makes it).
func (s vectorSignature) request(tb testing.TB, serverSide, signed bool) *http.Request {
	tb.Helper()
	var r *http.Request
	if serverSide {
		r = httptest.NewRequest(s.Method, s.URL, strings.NewReader(s.Body))
	} else {
		var err error
		if r, err = http.NewRequest(s.Method, s.URL, strings.NewReader(s.Body)); err != nil {
			tb.Fatal(err)
		}
	}
	for k, v := range s.Headers {
		if k == "Host" {
			r.Host = v
			continue
		}
		r.Header.Set(k, v)
	}
	if signed {
		r.Header.Set("Signature-Input", s.SignatureInput)
		r.Header.Set("Signature", s.Signature)
	}
	return r
}

func sideName(serverSide bool) string {
	if serverSide {
		return " (server side)"
	}
	return " (client side)"
}

func unix(sec int64) func() time.Time {
	return func() time.Time { return time.Unix(sec, 0) }
}

const (
	vecDispatch   = "dispatch-style, test key, created 1700000000"
	vecDispatch2  = "dispatch-style, test key, created 1618884473"
	vecDevKey     = "dispatch-style, static dev key, empty body, Run path"
	vecRFCB26     = "RFC 9421 B.2.6 (keyid test-key-ed25519, no content-digest covered)"
	vecCreated    = 1700000000
	vecCreatedOld = 1618884473
)

func TestVectorSignatures(t *testing.T) {
	t.Parallel()
	vf := loadVectors(t)
	tests := []struct {
		name   string
		vector string
		at     int64
		want   error  // nil, ErrMissing or ErrInvalid
		msg    string // the whole message, or a part of it when partial
		partOK bool
	}{
		{name: "valid a minute after created", vector: vecDispatch, at: vecCreated + 60},
		{name: "valid at created", vector: vecDispatch, at: vecCreated},
		{name: "valid at exactly max age", vector: vecDispatch, at: vecCreated + 300},
		{name: "too old at created+301", vector: vecDispatch, at: vecCreated + 301, want: ErrInvalid,
			msg: "signature: created 1700000000 is 5m1s old (limit 5m0s)"},
		{name: "too old by minutes", vector: vecDispatch, at: vecCreated + 420, want: ErrInvalid,
			msg: "signature: created 1700000000 is 7m0s old (limit 5m0s)"},
		{name: "in the future at 1699999990", vector: vecDispatch, at: 1699999990, want: ErrInvalid,
			msg: "signature: created 1700000000 is 10s in the future (limit 5s)"},
		{name: "valid at exactly max skew", vector: vecDispatch, at: vecCreated - 5},
		{name: "second vector valid", vector: vecDispatch2, at: 1618884500},
		{name: "second vector too old now", vector: vecDispatch2, at: vecCreated, want: ErrInvalid,
			msg: "signature: created 1618884473 is ", partOK: true},
		{name: "static dev key, empty body", vector: vecDevKey, at: vecCreated + 60},
		{name: "RFC B.2.6 refused for its keyid", vector: vecRFCB26, at: 1618884500, want: ErrInvalid,
			msg: `signature: keyid is "test-key-ed25519", want "default"`},
	}
	covered := map[string]bool{}
	for _, tt := range tests {
		covered[tt.vector] = true
	}
	for _, s := range vf.Signatures {
		if !covered[s.Name] {
			t.Errorf("signature vector %q has no case in this table: add one", s.Name)
		}
	}
	for _, tt := range tests {
		for _, serverSide := range []bool{true, false} {
			t.Run(tt.name+sideName(serverSide), func(t *testing.T) {
				t.Parallel()
				is := is.New(t)
				s := vf.signature(t, tt.vector)
				v := NewVerifier(vf.publicKey(t, s.Key), WithClock(unix(tt.at)))
				err := v.Verify(s.request(t, serverSide, true), []byte(s.Body))
				if tt.want == nil {
					is.NoErr(err)
					return
				}
				is.True(errors.Is(err, tt.want)) // error wraps the right sentinel
				if tt.partOK {
					is.True(strings.HasPrefix(err.Error(), tt.msg)) // message
				} else {
					is.Equal(err.Error(), tt.msg)
				}
			})
		}
	}
}

// TestVectorSignatureBase checks the signature base against the vectors
// that give it, and that every vector's signature verifies over the base
// this package builds, the RFC's B.2.6 included (it is refused only by
// Dispatch's rules, not cryptographically).
func TestVectorSignatureBase(t *testing.T) {
	t.Parallel()
	vf := loadVectors(t)
	for _, s := range vf.Signatures {
		for _, serverSide := range []bool{true, false} {
			t.Run(s.Name+sideName(serverSide), func(t *testing.T) {
				t.Parallel()
				is := is.New(t)
				r := s.request(t, serverSide, true)
				inputs, err := parseDictionary(s.SignatureInput)
				is.NoErr(err)
				is.Equal(len(inputs), 1)
				base, err := appendSignatureBase(nil, r, inputs[0].list, inputs[0].raw)
				is.NoErr(err)
				if s.SignatureBase != "" {
					is.Equal(string(base), s.SignatureBase)
				}
				sigs, err := parseDictionary(s.Signature)
				is.NoErr(err)
				var sig [ed25519.SignatureSize]byte
				is.True(decodeByteSeq(sig[:], sigs[0].val.str))
				is.True(ed25519.Verify(vf.publicKey(t, s.Key), base, sig[:])) // vector signature verifies
			})
		}
	}
}

// TestSignerReproducesVectors signs each Dispatch-style vector's request
// again: Ed25519 is deterministic, so the headers must come out the same.
func TestSignerReproducesVectors(t *testing.T) {
	t.Parallel()
	vf := loadVectors(t)
	for _, s := range vf.Signatures {
		if !strings.HasPrefix(s.SignatureInput, "dispatch=") {
			continue
		}
		t.Run(s.Name, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			inputs, err := parseDictionary(s.SignatureInput)
			is.NoErr(err)
			var created int64
			for _, p := range inputs[0].params {
				if p.key == "created" {
					created = p.val.num
				}
			}
			r := s.request(t, false, false)
			r.Header.Del("Content-Digest") // the signer computes it
			signer := NewSigner(vf.privateKey(t, s.Key), WithSignerClock(unix(created)))
			is.NoErr(signer.Sign(r, []byte(s.Body)))
			is.Equal(r.Header.Get("Content-Digest"), s.Headers["Content-Digest"])
			is.Equal(r.Header.Get("Signature-Input"), s.SignatureInput)
			is.Equal(r.Header.Get("Signature"), s.Signature)
		})
	}
}

func TestDigestVectors(t *testing.T) {
	t.Parallel()
	vf := loadVectors(t)
	type tc struct {
		name  string
		field string
		body  string
		want  error
	}
	var tests []tc
	for i, d := range vf.Digests {
		n := fmt.Sprintf(" #%d", i)
		tests = append(tests,
			tc{name: "sha-512" + n, field: d.SHA512, body: d.Body},
			tc{name: "sha-512 other body" + n, field: d.SHA512, body: d.Body + "x", want: ErrInvalid},
		)
		if d.SHA256 != "" {
			tests = append(tests,
				tc{name: "sha-256" + n, field: d.SHA256, body: d.Body},
				tc{name: "sha-256 other body" + n, field: d.SHA256, body: d.Body + "x", want: ErrInvalid},
				tc{name: "sha-256 and sha-512" + n, field: d.SHA256 + ", " + d.SHA512, body: d.Body},
				tc{name: "sha-256 right, sha-512 wrong" + n, field: d.SHA256 + ", " + vf.Digests[(i+1)%len(vf.Digests)].SHA512, body: d.Body, want: ErrInvalid},
			)
		}
	}
	t.Run("signer writes the sha-512 vectors", func(t *testing.T) {
		is := is.New(t)
		for _, d := range vf.Digests {
			is.Equal(ContentDigest([]byte(d.Body)), d.SHA512)
		}
	})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			err := checkContentDigest(tt.field, []byte(tt.body))
			if tt.want == nil {
				is.NoErr(err)
				return
			}
			is.True(errors.Is(err, tt.want))
			is.True(strings.HasPrefix(err.Error(), "signature: Content-Digest sha-"))
		})
	}
}

func mustParseURL(tb testing.TB, s string) *url.URL {
	tb.Helper()
	u, err := url.Parse(s)
	if err != nil {
		tb.Fatal(err)
	}
	return u
}
