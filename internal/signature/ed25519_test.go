package signature

import (
	"crypto/ed25519"
	"crypto/sha512"
	"encoding/hex"
	"math/big"
	"math/rand/v2"
	"testing"

	"github.com/matryer/is"
)

// orderL is the order of the prime subgroup of edwards25519.
var orderL, _ = new(big.Int).SetString("7237005577332262213973186563042994763544683928597966185530264786317317939357", 10)

// addL adds L to the scalar s of sig (little-endian): the same signature
// with a non-canonical s, which crypto/ed25519 refuses.
func addL(sig []byte) []byte {
	le := make([]byte, 32)
	for i := range 32 {
		le[31-i] = sig[32+i]
	}
	s := new(big.Int).SetBytes(le)
	s.Add(s, orderL)
	be := s.FillBytes(make([]byte, 32))
	out := append([]byte(nil), sig...)
	for i := range 32 {
		out[32+i] = be[31-i]
	}
	return out
}

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// TestEd25519MatchesStdlib checks that signing and verifying through
// curve25519-voi give what crypto/ed25519 gives, on valid signatures and
// on the edge cases where Ed25519 verifiers are known to differ.
func TestEd25519MatchesStdlib(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(1, 2))
	seed := make([]byte, ed25519.SeedSize)
	for i := range seed {
		seed[i] = byte(r.Uint32())
	}
	priv := ed25519.NewKeyFromSeed(seed)
	pub := priv.Public().(ed25519.PublicKey)
	msg := []byte("@method: POST\n@path: /dispatch.sdk.v1.FunctionService/Run")
	good := ed25519.Sign(priv, msg)

	// The identity point (small order) and a non-canonical encoding of
	// it (y = p + 1), which crypto/ed25519 both accept as keys.
	identity := mustHex("0100000000000000000000000000000000000000000000000000000000000000")
	nonCanonical := mustHex("eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f")
	// With A and R the identity and s = 0, [s]B - [k]A == R for any
	// message: crypto/ed25519 accepts it (cofactorless, small order
	// allowed) and so must we.
	trivial := append(append([]byte(nil), identity...), make([]byte, 32)...)

	tests := []struct {
		name string
		key  []byte
		msg  []byte
		sig  []byte
	}{
		{"valid", pub, msg, good},
		{"other message", pub, []byte("@method: GET"), good},
		{"flipped R bit", pub, msg, flip(good, 3)},
		{"flipped s bit", pub, msg, flip(good, 40)},
		{"non-canonical s (s+L)", pub, msg, addL(good)},
		{"zero signature", pub, msg, make([]byte, 64)},
		{"identity key, trivial signature", identity, msg, trivial},
		{"non-canonical identity key, trivial signature", nonCanonical, msg, trivial},
		{"identity key, real signature", identity, msg, good},
		{"short signature", pub, msg, good[:63]},
		{"key not on the curve", mustHex("0200000000000000000000000000000000000000000000000000000000000000"), msg, good},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			want := ed25519.Verify(tt.key, tt.msg, tt.sig)
			got := verifyEd25519(expandKey(tt.key), tt.msg, tt.sig)
			is.Equal(got, want) // voi and crypto/ed25519 disagree
		})
	}

	t.Run("sign", func(t *testing.T) {
		is := is.New(t)
		for i := range 64 {
			m := make([]byte, i*7)
			for j := range m {
				m[j] = byte(r.Uint32())
			}
			is.Equal(signEd25519(priv, m), ed25519.Sign(priv, m)) // deterministic signatures differ
		}
	})
}

func flip(b []byte, bit int) []byte {
	out := append([]byte(nil), b...)
	out[bit/8] ^= 1 << (bit % 8)
	return out
}

// FuzzEd25519MatchesStdlib compares verification with crypto/ed25519 on
// arbitrary keys, messages and signatures, and on signatures made from a
// fuzzed seed with a fuzzed corruption.
func FuzzEd25519MatchesStdlib(f *testing.F) {
	f.Add(make([]byte, 32), []byte("m"), make([]byte, 64), uint16(0))
	f.Add(mustHex("0100000000000000000000000000000000000000000000000000000000000000"), []byte{}, make([]byte, 64), uint16(600))
	f.Fuzz(func(t *testing.T, key, msg, sig []byte, bit uint16) {
		if len(key) == 32 && len(sig) == 64 {
			if ed25519.Verify(key, msg, sig) != verifyEd25519(expandKey(key), msg, sig) {
				t.Fatalf("disagree on key %x msg %x sig %x", key, msg, sig)
			}
		}
		// A real key and signature, made from the fuzzed bytes, with one
		// bit flipped (or none when bit is past the end).
		seed := sha512.Sum512(append(key, sig...))
		priv := ed25519.NewKeyFromSeed(seed[:32])
		pub := priv.Public().(ed25519.PublicKey)
		s := signEd25519(priv, msg)
		if i := int(bit); i < 512 {
			s[i/8] ^= 1 << (i % 8)
		}
		if ed25519.Verify(pub, msg, s) != verifyEd25519(expandKey(pub), msg, s) {
			t.Fatalf("disagree on seed %x msg %x sig %x", seed[:32], msg, s)
		}
	})
}
