// Package vectors loads the signature test vectors shared with the other
// SDKs (shared/vectors/signatures.json, beside the repository clone), for
// the tests of the packages that sign and verify requests.
package vectors

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Path is where the vectors are, relative to a parent of the package
// directory (shared/ sits beside the repository clone, locally and in CI).
const Path = "shared/vectors/signatures.json"

// File is shared/vectors/signatures.json.
type File struct {
	Keys                    map[string]Key `json:"keys"`
	InvalidVerificationKeys []string       `json:"invalid_verification_keys"`
	Digests                 []Digest       `json:"digests"`
	Signatures              []Signature    `json:"signatures"`
}

// Key is a key pair in its several encodings.
type Key struct {
	PublicPEM         string `json:"public_pem"`
	PublicPEMEscaped  string `json:"public_pem_escaped_one_line"`
	PublicBase64      string `json:"public_base64_raw"`
	PublicHex         string `json:"public_hex"`
	PrivatePEM        string `json:"private_pem"`
	PrivateSeedHex    string `json:"private_seed_hex"`
	PrivateSeedBase64 string `json:"private_seed_base64"`
}

// Digest is a body with its Content-Digest values.
type Digest struct {
	Body   string `json:"body"`
	SHA512 string `json:"sha-512"`
	SHA256 string `json:"sha-256"`
}

// Signature is a signed request and what a verifier should make of it.
type Signature struct {
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

// Load reads the vectors from the first parent of the working directory
// (the package directory) that has them. They are part of the contract with
// the other SDKs, so their absence fails the test rather than skipping it.
func Load(tb testing.TB) *File {
	tb.Helper()
	dir, err := os.Getwd()
	if err != nil {
		tb.Fatalf("cannot get the working directory: %v", err)
	}
	for {
		path := filepath.Join(dir, Path)
		data, err := os.ReadFile(path)
		if err == nil {
			var f File
			if err := json.Unmarshal(data, &f); err != nil {
				tb.Fatalf("decoding %s: %v", path, err)
			}
			if len(f.Signatures) == 0 || len(f.Keys) == 0 || len(f.Digests) == 0 || len(f.InvalidVerificationKeys) == 0 {
				tb.Fatalf("%s has no signatures, keys, digests or invalid keys", path)
			}
			return &f
		}
		if !errors.Is(err, os.ErrNotExist) {
			tb.Fatalf("%s: %v", path, err)
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			tb.Fatalf("cannot find %s in any parent of the package directory: the signature test vectors live in shared/ beside the repository clone; put shared/ there", Path)
		}
		dir = parent
	}
}

// Signature returns the signature vector called name.
func (f *File) Signature(tb testing.TB, name string) Signature {
	tb.Helper()
	for _, s := range f.Signatures {
		if s.Name == name {
			return s
		}
	}
	tb.Fatalf("no signature vector named %q", name)
	return Signature{}
}

// PublicKey is the public key of a named vector key, from its raw base64
// form (checked against its hex form), not through a parser under test.
func (f *File) PublicKey(tb testing.TB, name string) ed25519.PublicKey {
	tb.Helper()
	k, ok := f.Keys[name]
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

// PrivateKey is the private key of a named vector key, from its seed.
func (f *File) PrivateKey(tb testing.TB, name string) ed25519.PrivateKey {
	tb.Helper()
	k, ok := f.Keys[name]
	if !ok {
		tb.Fatalf("no vector key %q", name)
	}
	seed, err := base64.StdEncoding.DecodeString(k.PrivateSeedBase64)
	if err != nil || len(seed) != ed25519.SeedSize {
		tb.Fatalf("vector key %q: bad private_seed_base64", name)
	}
	return ed25519.NewKeyFromSeed(seed)
}

// Request builds the vector's request, server side (as a handler receives
// it, RequestURI set) or client side (as http.NewRequest makes it), with
// its signature headers if signed.
func (s Signature) Request(tb testing.TB, serverSide, signed bool) *http.Request {
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
