package signature

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
)

// The key formats, as error messages state them.
const (
	publicKeyFormats  = `want a PEM "PUBLIC KEY" block (SubjectPublicKeyInfo), the same PEM on one line with literal \n escapes, or the standard padded base64 of the raw 32-byte Ed25519 public key`
	privateKeyFormats = `want a PEM "PRIVATE KEY" block (PKCS #8), the same PEM on one line with literal \n escapes, or the standard padded base64 of the 32-byte Ed25519 seed`
)

// ParsePublicKey parses an Ed25519 public key given as one of:
//
//   - a PEM "PUBLIC KEY" block holding a SubjectPublicKeyInfo;
//   - the same PEM on one line, its line breaks written as literal \n;
//   - standard, padded base64 of the raw 32-byte key (see [EncodePublicKey]).
//
// Surrounding whitespace is ignored. Hex is not accepted. Anything else is
// an error that says
// which formats are accepted; it does not repeat the input.
func ParsePublicKey(s string) (ed25519.PublicKey, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, errors.New("signature: public key is empty; " + publicKeyFormats)
	}
	if isPEM(s) {
		der, err := decodePEM(s, "PUBLIC KEY")
		if err != nil {
			return nil, fmt.Errorf("signature: public key %v; %s", err, publicKeyFormats)
		}
		key, err := x509.ParsePKIXPublicKey(der)
		if err != nil {
			return nil, fmt.Errorf("signature: public key PEM does not hold a SubjectPublicKeyInfo (%v); %s", err, publicKeyFormats)
		}
		pub, ok := key.(ed25519.PublicKey)
		if !ok {
			return nil, fmt.Errorf("signature: public key PEM holds a %T, not an Ed25519 key; %s", key, publicKeyFormats)
		}
		return pub, nil
	}
	if isHex(s) {
		return nil, errors.New("signature: public key looks like hex, which is not accepted; " + publicKeyFormats)
	}
	if strings.ContainsAny(s, "-_") {
		return nil, errors.New("signature: public key looks like URL-safe base64, which is not accepted; " + publicKeyFormats)
	}
	raw, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("signature: public key is neither PEM nor standard padded base64 (%v); %s", err, publicKeyFormats)
	}
	if len(raw) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("signature: public key is base64 of %d bytes, not %d; %s", len(raw), ed25519.PublicKeySize, publicKeyFormats)
	}
	return ed25519.PublicKey(raw), nil
}

// ParsePrivateKey parses an Ed25519 private key given as one of:
//
//   - a PEM "PRIVATE KEY" block holding a PKCS #8 private key;
//   - the same PEM on one line, its line breaks written as literal \n;
//   - standard, padded base64 of the 32-byte seed (see [EncodePrivateKey]).
//
// Surrounding whitespace is ignored. Errors never repeat the input.
func ParsePrivateKey(s string) (ed25519.PrivateKey, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, errors.New("signature: private key is empty; " + privateKeyFormats)
	}
	if isPEM(s) {
		der, err := decodePEM(s, "PRIVATE KEY")
		if err != nil {
			return nil, fmt.Errorf("signature: private key %v; %s", err, privateKeyFormats)
		}
		key, err := x509.ParsePKCS8PrivateKey(der)
		if err != nil {
			return nil, fmt.Errorf("signature: private key PEM does not hold a PKCS #8 key (%v); %s", err, privateKeyFormats)
		}
		priv, ok := key.(ed25519.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("signature: private key PEM holds a %T, not an Ed25519 key; %s", key, privateKeyFormats)
		}
		return priv, nil
	}
	if isHex(s) {
		return nil, errors.New("signature: private key looks like hex, which is not accepted; " + privateKeyFormats)
	}
	seed, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("signature: private key is neither PEM nor standard padded base64; %s", privateKeyFormats)
	}
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("signature: private key is base64 of %d bytes, not a %d-byte seed; %s", len(seed), ed25519.SeedSize, privateKeyFormats)
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

// EncodePublicKey encodes k as standard, padded base64 of its 32 raw bytes,
// the form the local server prints for DISPATCH_VERIFICATION_KEY and
// [ParsePublicKey] reads.
func EncodePublicKey(k ed25519.PublicKey) string {
	return base64.StdEncoding.EncodeToString(k)
}

// EncodePrivateKey encodes k as standard, padded base64 of its 32-byte
// seed, a form [ParsePrivateKey] reads. The result is a secret. Like
// [ed25519.PrivateKey.Seed], it panics if k is not 64 bytes long.
func EncodePrivateKey(k ed25519.PrivateKey) string {
	return base64.StdEncoding.EncodeToString(k.Seed())
}

// isPEM reports whether s looks like PEM (it was trimmed).
func isPEM(s string) bool {
	return strings.HasPrefix(s, "-----BEGIN ")
}

// isHex reports whether s is the hex form of a 32-byte key or seed, a
// mistake worth naming: it is also valid base64, of 48 bytes.
func isHex(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isDigit(c) && (c < 'a' || c > 'f') && (c < 'A' || c > 'F') {
			return false
		}
	}
	return true
}

// decodePEM decodes s, a single PEM block of type typ whose line breaks may
// be written as literal \n, and returns its bytes. Errors complete the
// sentence "public key ..." or "private key ...".
func decodePEM(s, typ string) ([]byte, error) {
	// Base64 has no backslashes, so a literal \n can only be an escaped
	// line break.
	s = strings.ReplaceAll(s, `\n`, "\n")
	block, rest := pem.Decode([]byte(s))
	if block == nil {
		return nil, errors.New("is not a well-formed PEM block")
	}
	if block.Type != typ {
		return nil, fmt.Errorf("PEM block is %q, not %q", block.Type, typ)
	}
	if len(strings.TrimSpace(string(rest))) != 0 {
		return nil, errors.New("has text after its PEM block")
	}
	return block.Bytes, nil
}
