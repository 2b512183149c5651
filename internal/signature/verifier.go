package signature

import (
	"crypto/ed25519"
	"fmt"
	"net/http"
	"strings"
	"time"

	voi "github.com/oasisprotocol/curve25519-voi/primitives/ed25519"
)

// Default limits on the created parameter of a signature.
const (
	defaultMaxAge        = 5 * time.Minute
	defaultMaxFutureSkew = 5 * time.Second
)

// A Verifier checks the signatures of requests Dispatch sends (see the
// package doc for the rules). It is safe for concurrent use. Its settings
// are fixed by [NewVerifier]; with [WithReplayCache], it also remembers the
// signatures it accepted.
type Verifier struct {
	key ed25519.PublicKey
	// expanded is key decompressed, with the precomputed tables of
	// curve25519-voi: verifying with it takes about half the time of
	// crypto/ed25519.Verify. Nil when key is not a point of the curve.
	expanded *voi.ExpandedPublicKey
	now      func() time.Time
	maxAge   time.Duration
	maxSkew  time.Duration
	replay   *replayCache // nil: replays are not detected
}

// A VerifierOption configures a [Verifier].
type VerifierOption interface {
	applyVerifier(*Verifier)
}

type verifierOptionFunc func(*Verifier)

func (f verifierOptionFunc) applyVerifier(v *Verifier) { f(v) }

// WithClock makes the verifier read the current time from now instead of
// time.Now. A nil now is ignored.
func WithClock(now func() time.Time) VerifierOption {
	return verifierOptionFunc(func(v *Verifier) {
		if now != nil {
			v.now = now
		}
	})
}

// WithMaxAge sets how old a signature's created time may be (default 5
// minutes). A d of zero or less keeps the default.
func WithMaxAge(d time.Duration) VerifierOption {
	return verifierOptionFunc(func(v *Verifier) {
		if d > 0 {
			v.maxAge = d
		}
	})
}

// WithMaxFutureSkew sets how far in the future a signature's created time
// may be, to allow for clock skew (default 5 seconds). A d of zero or less
// keeps the default.
func WithMaxFutureSkew(d time.Duration) VerifierOption {
	return verifierOptionFunc(func(v *Verifier) {
		if d > 0 {
			v.maxSkew = d
		}
	})
}

// NewVerifier returns a verifier that accepts signatures made with the
// private half of key. A key that is not an Ed25519 public key (32 bytes,
// the encoding of a point of the curve) makes Verify fail.
func NewVerifier(key ed25519.PublicKey, opts ...VerifierOption) *Verifier {
	v := &Verifier{key: key, now: time.Now, maxAge: defaultMaxAge, maxSkew: defaultMaxFutureSkew}
	for _, o := range opts {
		o.applyVerifier(v)
	}
	v.expanded = expandKey(key)
	if v.replay != nil {
		v.replay.init(v.maxAge, v.maxSkew)
	}
	return v
}

// Verify checks the signature of r, whose body is body (read in full by the
// caller). It returns nil if the request is signed as the package doc
// describes; otherwise an error that wraps [ErrMissing] (no signature, or
// malformed signature headers) or [ErrInvalid] (a signature that is
// refused; [ErrReplay], which wraps ErrInvalid, for a replay), or, when the
// verifier's key is not an Ed25519 public key (not 32 bytes, or not a point
// of the curve), neither.
func (v *Verifier) Verify(r *http.Request, body []byte) error {
	s, err := v.VerifyHeaders(r)
	if err != nil {
		return err
	}
	return s.CheckBody(body)
}

// Signed is a request whose signature verified, pending the check of its
// body against the Content-Digest the signature covers: see
// [Verifier.VerifyHeaders].
type Signed struct {
	v       *Verifier
	digest  string    // the Content-Digest field
	key     replayKey // of the signature base, for the replay cache
	created int64     // the created parameter
	now     time.Time // when it was checked
}

// CheckBody checks body against the Content-Digest of the signed request,
// and then, with a replay cache, that the request was not accepted before.
// Call it once per request.
func (s Signed) CheckBody(body []byte) error {
	if err := checkContentDigest(s.digest, body); err != nil {
		return err
	}
	// Last, once the request is known to be genuine: a forged request
	// must not make the cache refuse the genuine one.
	if s.v.replay != nil {
		return s.v.replay.check(s.created, s.key, s.now)
	}
	return nil
}

// VerifyHeaders is the first half of [Verifier.Verify]: it checks
// everything the signature covers, which is in the request's headers
// (the Content-Digest field, not the body), so that a request that is not
// signed, or not by the verification key, is refused before its body is
// read. [Signed.CheckBody] then checks the body read in full; only then
// is the request genuine (and remembered by the replay cache). The errors
// are those of Verify.
func (v *Verifier) VerifyHeaders(r *http.Request) (Signed, error) {
	if len(v.key) != ed25519.PublicKeySize {
		return Signed{}, fmt.Errorf("signature: verification key is %d bytes, want an Ed25519 public key of %d bytes", len(v.key), ed25519.PublicKeySize)
	}
	if v.expanded == nil {
		return Signed{}, fmt.Errorf("signature: verification key %x is not an Ed25519 public key (not a point of the curve); copy the key Dispatch prints again", []byte(v.key))
	}
	inputField, ok := fieldValue(r.Header, "Signature-Input")
	if !ok {
		return Signed{}, missingf("request has no Signature-Input header")
	}
	sigField, ok := fieldValue(r.Header, "Signature")
	if !ok {
		return Signed{}, missingf("request has no Signature header")
	}
	inputs, err := parseDictionary(inputField)
	if err != nil {
		return Signed{}, missingf("Signature-Input is not an RFC 8941 dictionary: %v", err)
	}
	sigs, err := parseDictionary(sigField)
	if err != nil {
		return Signed{}, missingf("Signature is not an RFC 8941 dictionary: %v", err)
	}
	switch {
	case len(inputs) == 0:
		return Signed{}, missingf("Signature-Input header is empty")
	case len(sigs) == 0:
		return Signed{}, missingf("Signature header is empty")
	case len(inputs) > 1:
		return Signed{}, invalidf("Signature-Input has %d signatures (%s), want exactly one", len(inputs), labels(inputs))
	case len(sigs) > 1:
		return Signed{}, invalidf("Signature has %d signatures (%s), want exactly one", len(sigs), labels(sigs))
	}
	in, sg := &inputs[0], &sigs[0]
	if in.key != sg.key {
		return Signed{}, missingf("Signature has label %q but Signature-Input has %q", sg.key, in.key)
	}
	if !in.isList {
		return Signed{}, missingf("Signature-Input %q is a %s, want an inner list of covered components", in.key, memberKind(in))
	}
	for i := range in.list {
		if k := in.list[i].val.kind; k != kindString {
			return Signed{}, missingf("covered component %d of Signature-Input %q is a %s, want a string", i+1, in.key, k)
		}
	}
	if sg.isList || sg.val.kind != kindByteSeq {
		return Signed{}, missingf("Signature %q is a %s, want a byte sequence (:base64:)", sg.key, memberKind(sg))
	}

	created, now, err := v.checkParams(in.params)
	if err != nil {
		return Signed{}, err
	}
	if err := checkComponents(in.list); err != nil {
		return Signed{}, err
	}
	var sig [ed25519.SignatureSize]byte
	if !decodeByteSeq(sig[:], sg.val.str) {
		return Signed{}, invalidf("Signature %q is %d bytes, want %d", sg.key, byteSeqLen(sg.val.str), ed25519.SignatureSize)
	}
	// The "@signature-params" line is the member's own text: RFC 9421 signs
	// the serialization the signer sent, and the parser checked it.
	base, err := appendSignatureBase(make([]byte, 0, 512), r, in.list, in.raw)
	if err != nil {
		return Signed{}, invalidf("%v", err)
	}
	if !verifyEd25519(v.expanded, base, sig[:]) {
		return Signed{}, invalidf("signature %q does not verify with the verification key", in.key)
	}
	// Content-Digest is covered, so appendSignatureBase found it.
	digest, _ := fieldValue(r.Header, "Content-Digest")
	s := Signed{v: v, digest: digest, created: created, now: now}
	if v.replay != nil {
		s.key = keyOf(base)
	}
	return s, nil
}

// checkParams checks the signature parameters: keyid, alg, created and
// expires, each at most once. Other parameters (nonce, tag, extensions)
// are allowed and ignored. It returns created, and the time it was checked
// against.
func (v *Verifier) checkParams(params []param) (int64, time.Time, error) {
	var created, expires, alg, keyid *bareItem
	for i := range params {
		p := &params[i]
		var slot **bareItem
		switch p.key {
		case "created":
			slot = &created
		case "expires":
			slot = &expires
		case "alg":
			slot = &alg
		case "keyid":
			slot = &keyid
		default:
			continue
		}
		if *slot != nil {
			return 0, time.Time{}, invalidf("signature parameter %s appears more than once", p.key)
		}
		*slot = &p.val
	}
	if keyid == nil {
		return 0, time.Time{}, invalidf("signature has no keyid parameter, want keyid=%q", keyID)
	}
	if keyid.kind != kindString || keyid.str != keyID {
		return 0, time.Time{}, invalidf("keyid is %s, want %q", describe(keyid), keyID)
	}
	if alg != nil && (alg.kind != kindString || alg.str != "ed25519") {
		return 0, time.Time{}, invalidf("alg is %s, want \"ed25519\"", describe(alg))
	}
	if created == nil {
		return 0, time.Time{}, invalidf("signature has no created parameter")
	}
	if created.kind != kindInteger {
		return 0, time.Time{}, invalidf("created is %s, want an integer (unix seconds)", describe(created))
	}
	now := v.now()
	createdAt := time.Unix(created.num, 0)
	if age := now.Sub(createdAt); age > v.maxAge {
		return 0, now, invalidf("created %d is %v old (limit %v)", created.num, age, v.maxAge)
	}
	if ahead := createdAt.Sub(now); ahead > v.maxSkew {
		return 0, now, invalidf("created %d is %v in the future (limit %v)", created.num, ahead, v.maxSkew)
	}
	if expires != nil {
		if expires.kind != kindInteger {
			return 0, now, invalidf("expires is %s, want an integer (unix seconds)", describe(expires))
		}
		if expiresAt := time.Unix(expires.num, 0); now.After(expiresAt) {
			return 0, now, invalidf("signature expired at %d (%v ago)", expires.num, now.Sub(expiresAt))
		}
	}
	return created.num, now, nil
}

// checkComponents checks that the covered components, all strings, are
// plain (no parameters), each covered once, and include the five a
// Dispatch signature covers.
func checkComponents(items []listItem) error {
	var covered [len(requiredComponents)]bool
	for i := range items {
		it := &items[i]
		name := it.val.str
		if len(it.params) > 0 {
			return invalidf("covered component %q has parameters (;%s); only plain components are supported", name, it.params[0].key)
		}
		for j := range i {
			if items[j].val.str == name {
				return invalidf("component %q is covered more than once", name)
			}
		}
		for k, req := range requiredComponents {
			if name == req {
				covered[k] = true
			}
		}
	}
	for k, ok := range covered {
		if !ok {
			return invalidf("Signature-Input does not cover %q; a Dispatch signature covers %s", requiredComponents[k], signerComponentList)
		}
	}
	return nil
}

// labels lists the labels of a dictionary for messages.
func labels(members []member) string {
	var b strings.Builder
	for i := range members {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%q", members[i].key)
	}
	return b.String()
}

// describe renders a parameter value for messages, shortened: it may come
// from anyone.
func describe(it *bareItem) string {
	const max = 64
	short := func(s string) string {
		if len(s) > max {
			return s[:max] + "..."
		}
		return s
	}
	switch it.kind {
	case kindString:
		return fmt.Sprintf("%q", short(it.str))
	case kindToken:
		return fmt.Sprintf("the token %s", short(it.str))
	case kindInteger:
		return fmt.Sprintf("the integer %d", it.num)
	case kindDecimal:
		return fmt.Sprintf("the decimal %s", it.str)
	case kindBoolean:
		if it.flag {
			return "the boolean ?1"
		}
		return "the boolean ?0"
	case kindByteSeq:
		return fmt.Sprintf("a byte sequence of %d bytes", byteSeqLen(it.str))
	}
	return "an unknown item"
}
