package signature

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/dispatchkit/dispatch/internal/vectors"
	"github.com/matryer/is"
)

// loadVectors loads the vectors shared with the other SDKs (see
// internal/vectors).
func loadVectors(tb testing.TB) *vectors.File { return vectors.Load(tb) }

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
				s := vf.Signature(t, tt.vector)
				v := NewVerifier(vf.PublicKey(t, s.Key), WithClock(unix(tt.at)))
				err := v.Verify(s.Request(t, serverSide, true), []byte(s.Body))
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
				r := s.Request(t, serverSide, true)
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
				is.True(ed25519.Verify(vf.PublicKey(t, s.Key), base, sig[:])) // vector signature verifies
			})
		}
	}
}

// TestSignerReproducesVectors signs each Dispatch-style vector's request
// again: Ed25519 is deterministic, so without the nonce the headers must
// come out the same; with it (the default), Signature-Input is the
// vector's followed by the nonce, and the request verifies.
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
			r := s.Request(t, false, false)
			r.Header.Del("Content-Digest") // the signer computes it
			signer := NewSigner(vf.PrivateKey(t, s.Key), WithSignerClock(unix(created)), WithoutNonce())
			is.NoErr(signer.Sign(r, []byte(s.Body)))
			is.Equal(r.Header.Get("Content-Digest"), s.Headers["Content-Digest"])
			is.Equal(r.Header.Get("Signature-Input"), s.SignatureInput)
			is.Equal(r.Header.Get("Signature"), s.Signature)

			withNonce := NewSigner(vf.PrivateKey(t, s.Key), WithSignerClock(unix(created)))
			is.NoErr(withNonce.Sign(r, []byte(s.Body)))
			input := r.Header.Get("Signature-Input")
			is.True(strings.HasPrefix(input, s.SignatureInput+`;nonce="`))
			is.True(r.Header.Get("Signature") != s.Signature)
			pub := vf.PrivateKey(t, s.Key).Public().(ed25519.PublicKey)
			is.NoErr(NewVerifier(pub, WithClock(unix(created+1))).Verify(r, []byte(s.Body)))
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
