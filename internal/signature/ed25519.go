package signature

import (
	"crypto/ed25519"

	voi "github.com/oasisprotocol/curve25519-voi/primitives/ed25519"
)

// Ed25519 through curve25519-voi, which signs in about half the time of
// crypto/ed25519 and, with a public key expanded once into precomputed
// tables, verifies in about half the time too (on the 2-core AMD EPYC of
// the benchmarks: sign 13 µs against 26 µs, verify 30 µs against 56 µs).
// Every Run request is signed by the server and verified by the SDK, so
// this is a good part of the cost of a step. The results are the same as
// crypto/ed25519's: signatures are deterministic (RFC 8032), and
// verification takes voi's options that accept exactly what
// crypto/ed25519.Verify accepts (cofactorless, canonical s, any encoding
// of A); ed25519_test.go checks both against crypto/ed25519.

// stdlibOptions makes voi verify like crypto/ed25519.Verify.
var stdlibOptions = &voi.Options{Verify: voi.VerifyOptionsStdLib}

// signEd25519 signs message with key, a 64-byte ed25519.PrivateKey.
func signEd25519(key ed25519.PrivateKey, message []byte) []byte {
	return voi.Sign(voi.PrivateKey(key), message)
}

// expandKey returns key decompressed with its precomputed tables, or nil
// when key is not 32 bytes or not the encoding of a point of the curve
// (crypto/ed25519.Verify refuses every signature for such a key).
func expandKey(key ed25519.PublicKey) *voi.ExpandedPublicKey {
	if len(key) != ed25519.PublicKeySize {
		return nil
	}
	x, err := voi.NewExpandedPublicKey(voi.PublicKey(key))
	if err != nil {
		return nil
	}
	return x
}

// verifyEd25519 reports whether sig is a signature of message by the
// expanded key, as crypto/ed25519.Verify would.
func verifyEd25519(key *voi.ExpandedPublicKey, message, sig []byte) bool {
	return key != nil && voi.VerifyExpandedWithOptions(key, message, sig, stdlibOptions)
}
