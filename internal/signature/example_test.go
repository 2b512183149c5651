package signature_test

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/dispatchkit/dispatch/internal/signature"
)

// Sign a request as Dispatch does, then verify it as the endpoint does. The
// key is the RFC 9421 test key; Ed25519 signatures are deterministic, so
// with a fixed clock and without the random nonce Dispatch adds
// (WithoutNonce) the headers are always the same.
func Example() {
	priv, err := signature.ParsePrivateKey("n4Ni+HpISpVObnQMW0wOhCKROaIKqKtW/2ZYb2p9KcU=")
	if err != nil {
		panic(err)
	}
	created := time.Unix(1700000000, 0)

	body := []byte(`{"hello": "world"}`)
	r, _ := http.NewRequest(http.MethodPost, "https://example.com/foo?bar=1", nil)
	r.Header.Set("Content-Type", "application/json")
	signer := signature.NewSigner(priv, signature.WithSignerClock(func() time.Time { return created }), signature.WithoutNonce())
	if err := signer.Sign(r, body); err != nil {
		panic(err)
	}
	fmt.Println("Content-Digest:", r.Header.Get("Content-Digest"))
	fmt.Println("Signature-Input:", r.Header.Get("Signature-Input"))
	fmt.Println("Signature:", r.Header.Get("Signature"))

	// The endpoint's side: DISPATCH_VERIFICATION_KEY holds the public key.
	pub, err := signature.ParsePublicKey("JrQLj5P/89iXES9+vFgrIy29clF9CC/oPPsw3c5D0bs=")
	if err != nil {
		panic(err)
	}
	verifier := signature.NewVerifier(pub, signature.WithClock(func() time.Time { return created.Add(time.Minute) }), signature.WithReplayCache(0, nil))
	fmt.Println("verified:", verifier.Verify(r, body))

	// The same request again is a replay.
	err = verifier.Verify(r, body)
	fmt.Println(err, "- replay (403):", errors.Is(err, signature.ErrReplay), errors.Is(err, signature.ErrInvalid))

	// Seven minutes later, the same request is refused.
	late := signature.NewVerifier(pub, signature.WithClock(func() time.Time { return created.Add(7 * time.Minute) }))
	err = late.Verify(r, body)
	fmt.Println(err, "- invalid (403):", errors.Is(err, signature.ErrInvalid))

	// Without its Signature header, it is not signed at all.
	r.Header.Del("Signature")
	err = verifier.Verify(r, body)
	fmt.Println(err, "- missing (401):", errors.Is(err, signature.ErrMissing))
	// Output:
	// Content-Digest: sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:
	// Signature-Input: dispatch=("@method" "@path" "@authority" "content-type" "content-digest");created=1700000000;keyid="default";alg="ed25519"
	// Signature: dispatch=:AvUQrzImYRUCZZVwV7nb04KTQQFtd1Jg8vHgbFCSS10ny5p+whSWvwyf+23TP3rwU81GJM/uAnm+db5rdWn6Dg==:
	// verified: <nil>
	// signature: replay: a request with this signature was already accepted; each signed request is accepted once - replay (403): true true
	// signature: created 1700000000 is 7m0s old (limit 5m0s) - invalid (403): true
	// signature: request has no Signature header - missing (401): true
}
