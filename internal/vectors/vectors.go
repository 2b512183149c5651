// Package vectors loads the signature test vectors shared with the other
// SDKs, for the tests of the packages that sign and verify requests.
//
// The vectors are maintained in shared/vectors/signatures.json, outside
// this repository. A byte-for-byte copy lives in testdata/signatures.json
// and is embedded in the package, so the tests of every package read the
// same vectors whatever their working directory, and pass on a bare clone
// (in CI, where shared/ is absent). When shared/ is beside the clone, a
// test of this package checks that the copy has not drifted from it.
package vectors

import (
	"crypto/ed25519"
	_ "embed"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// SharedPath is where the maintained vectors are, relative to a parent of
// the repository clone (shared/ sits beside it on a development machine;
// it is absent in CI). The tests use the embedded copy, [Data].
const SharedPath = "shared/vectors/signatures.json"

// CopyPath is the embedded copy of the vectors, relative to this package's
// directory.
const CopyPath = "testdata/signatures.json"

// Data is the embedded copy of shared/vectors/signatures.json, byte for
// byte. Copy the file again when the shared vectors change.
//
//go:embed testdata/signatures.json
var Data []byte

// File is the content of the vectors file.
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

// Load decodes the embedded copy of the vectors ([Data]). Each call
// returns a fresh File, so a test may modify what it gets.
func Load(tb testing.TB) *File {
	tb.Helper()
	var f File
	if err := json.Unmarshal(Data, &f); err != nil {
		tb.Fatalf("vectors: decoding the embedded %s: %v", CopyPath, err)
	}
	if len(f.Signatures) == 0 || len(f.Keys) == 0 || len(f.Digests) == 0 || len(f.InvalidVerificationKeys) == 0 {
		tb.Fatalf("vectors: the embedded %s has no signatures, keys, digests or invalid keys; copy %s again", CopyPath, SharedPath)
	}
	return &f
}

// FindShared looks for [SharedPath] in dir and each of its parents and
// returns the path of the first one that exists. It returns "" and no
// error when no parent has it (a bare clone, in CI), and an error when a
// candidate exists but cannot be examined.
func FindShared(dir string) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for {
		path := filepath.Join(dir, SharedPath)
		_, err := os.Stat(path)
		if err == nil {
			return path, nil
		}
		if !errors.Is(err, os.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) {
			return "", err
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", nil
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
