package signature

import (
	"bytes"
	"crypto/ed25519"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// benchBody is about the size of a typical RunRequest.
var benchBody = bytes.Repeat([]byte("dispatch"), 128)

func benchKey() ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, ed25519.SeedSize))
}

func BenchmarkSign(b *testing.B) {
	signer := NewSigner(benchKey(), WithSignerClock(unix(vecCreated)))
	r, err := http.NewRequest(http.MethodPost, "https://example.com:8443/app/dispatch.sdk.v1.FunctionService/Run", nil)
	if err != nil {
		b.Fatal(err)
	}
	r.Header.Set("Content-Type", "application/proto")
	b.ReportAllocs()
	for b.Loop() {
		if err := signer.Sign(r, benchBody); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	key := benchKey()
	signer := NewSigner(key, WithSignerClock(unix(vecCreated)))
	r := httptest.NewRequest(http.MethodPost, "/app/dispatch.sdk.v1.FunctionService/Run", nil)
	r.Host = "example.com:8443"
	r.Header.Set("Content-Type", "application/proto")
	if err := signer.Sign(r, benchBody); err != nil {
		b.Fatal(err)
	}
	v := NewVerifier(key.Public().(ed25519.PublicKey), WithClock(func() time.Time { return time.Unix(vecCreated+1, 0) }))
	b.ReportAllocs()
	for b.Loop() {
		if err := v.Verify(r, benchBody); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseSignatureInput(b *testing.B) {
	const input = `dispatch=("@method" "@path" "@authority" "content-type" "content-digest");created=1700000000;keyid="default";alg="ed25519"`
	b.ReportAllocs()
	for b.Loop() {
		if _, err := parseDictionary(input); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReplayCheck is the replay cache's part of a verification: the
// digest of a signature base (of a typical size), the look-up and the
// insertion, into a cache that holds up to 64Ki entries.
func BenchmarkReplayCheck(b *testing.B) {
	const perCache = 1 << 16
	base := bytes.Repeat([]byte("x"), 400)
	now := time.Unix(vecCreated, 0)
	newCache := func() *replayCache {
		c := &replayCache{size: DefaultReplayCacheSize}
		c.init(defaultMaxAge, defaultMaxFutureSkew)
		return c
	}
	c := newCache()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if i%perCache == 0 {
			c = newCache()
		}
		i++
		base[0], base[1], base[2] = byte(i), byte(i>>8), byte(i>>16)
		if err := c.check(vecCreated-int64(i%300), keyOf(base), now); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEd25519 is the floor of a signed request's cost: the Ed25519
// operations alone, on a message of the size of a signature base (about
// 400 bytes: five components and the parameters), with crypto/ed25519
// and with curve25519-voi as ed25519.go uses it (the public key expanded
// once, as a Verifier does). Every Run request costs one sign (server) and
// one verify (endpoint).
func BenchmarkEd25519(b *testing.B) {
	priv := benchKey()
	pub := priv.Public().(ed25519.PublicKey)
	msg := bytes.Repeat([]byte("b"), 400)
	sig := ed25519.Sign(priv, msg)
	expanded := expandKey(pub)
	benchmarks := []struct {
		name string
		op   func() bool
	}{
		{"sign/stdlib", func() bool { return len(ed25519.Sign(priv, msg)) == ed25519.SignatureSize }},
		{"sign/voi", func() bool { return len(signEd25519(priv, msg)) == ed25519.SignatureSize }},
		{"verify/stdlib", func() bool { return ed25519.Verify(pub, msg, sig) }},
		{"verify/voi-expanded", func() bool { return verifyEd25519(expanded, msg, sig) }},
	}
	for _, bm := range benchmarks {
		b.Run(bm.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if !bm.op() {
					b.Fatal("operation failed")
				}
			}
		})
	}
}
