// Package signature signs and verifies the requests Dispatch sends to an
// application's endpoint: HTTP Message Signatures (RFC 9421) with Ed25519,
// over a body bound by a Content-Digest field (RFC 9530).
//
// # The scheme
//
// The signer computes the SHA-512 of the body and puts it in
//
//	Content-Digest: sha-512=:<standard base64>:
//
// then signs a signature base made of five covered components and the
// signature parameters, one per line, joined by "\n":
//
//	"@method": POST
//	"@path": /app/dispatch.sdk.v1.FunctionService/Run
//	"@authority": example.com:8000
//	"content-type": application/proto
//	"content-digest": sha-512=:...:
//	"@signature-params": ("@method" "@path" "@authority" "content-type" "content-digest");created=1700000000;keyid="default";alg="ed25519";nonce="..."
//
// and sends the parameters and the Ed25519 signature under the label
// "dispatch":
//
//	Signature-Input: dispatch=("@method" "@path" "@authority" "content-type" "content-digest");created=1700000000;keyid="default";alg="ed25519";nonce="<base64 of 16 random bytes>"
//	Signature: dispatch=:<standard base64 of 64 bytes>:
//
// The nonce (RFC 9421 section 2.3) makes every signature unique: without
// it, two attempts of one call sent in the same second (retries back off
// from 100 ms) would have the same body and created time, so the same
// signature base and, Ed25519 being deterministic, the same signature, and
// a verifier that refuses replays would refuse the second attempt.
// [WithoutNonce] leaves it out. Verifiers treat it as optional: other
// signers (dispatch-py's) do not send one.
//
// The query string and the scheme are not covered: a proxy that ends TLS
// or adds query parameters does not break the signature. "@path" is the
// escaped path without the query ("/" when empty); "@authority" is the Host
// lower-cased, with its port when there is one.
//
// # Verification
//
// A [Verifier] accepts a request when all of these hold:
//
//   - Signature-Input and Signature each hold exactly one signature, under
//     the same label (any label);
//   - the covered components include "@method", "@path", "@authority",
//     "content-type" and "content-digest", in any order, each once; other
//     header fields and "@query" may be covered too;
//   - created is present, at most 5 minutes old and at most 5 seconds in
//     the future; expires, if present, has not passed; alg, if present, is
//     "ed25519"; keyid is "default";
//   - the Ed25519 signature verifies over the signature base, whose
//     "@signature-params" line is the member's text exactly as it appears in
//     Signature-Input (so a signer's own serialization is honoured);
//   - every sha-512 or sha-256 digest in Content-Digest (at least one must
//     be there) matches the body, compared in constant time.
//
// On the server side "@path" is taken from r.RequestURI, which is what the
// client sent, so a handler mounted behind [net/http.StripPrefix] still sees
// the full path that was signed. Without a RequestURI (a client-side
// request), r.URL.EscapedPath() is used.
//
// Signature-Input, Signature and Content-Digest are RFC 8941 dictionaries;
// the package parses them with its own small parser, which accepts every
// RFC 8941 dictionary but keeps duplicate keys instead of letting the last
// one win, so that an ambiguous signature is refused rather than resolved.
//
// # Replays
//
// With [WithReplayCache], a Verifier refuses a request it has already
// accepted, with [ErrReplay] (403 permission_denied). After a request
// verifies (its signature and its digest), the verifier remembers the
// SHA-256 of its signature base, truncated to 16 bytes, until its created
// time leaves the window (5 minutes old). The base covers the method, the
// path, the authority, the Content-Type, the Content-Digest (so the body)
// and the signature parameters, created and nonce included: a request
// that verifies with the same base is a replay, whatever its label, its
// query string or the header fields the signature does not cover. Only
// requests that verify are remembered, so a forged request cannot make
// the verifier refuse the genuine one.
//
// What is protected: a request captured on the way (a log, a proxy, a
// network without TLS) and sent again to the same endpoint process while
// its signature is still young enough is refused, and the function does
// not run again. A request older than the window is refused as too old,
// cache or not.
//
// What is not: the cache lives in one process. Replicas of an endpoint
// each have their own, so a request captured on its way to one replica
// can be sent once to each of the others; a restart forgets the cache.
// TLS between Dispatch and the endpoint is what prevents the capture in
// the first place. A signer without a nonce (dispatch-py's mock server)
// that sends the same body twice within one second gets the second
// refused as a replay; that mock retries such requests, and the retry of
// a later second is accepted.
//
// Memory is bounded: the cache keeps at most the number of entries given
// (default [DefaultReplayCacheSize]), in buckets of one created second.
// When it is full of entries still in the window, it drops the bucket of
// the oldest second and from then on refuses signatures created up to that
// second as too old, so that a replay of a dropped entry is refused, never
// accepted: under pressure the window shrinks (the full callback of
// WithReplayCache is called the first time). Requests Dispatch sends are
// signed just before they are sent, so a window shrunk to a minute still
// accepts them all.
//
// # Errors
//
// Every error from [Verifier.Verify], but for a misconfigured key, wraps one
// of two sentinels, which map onto the protocol's answers:
//
//   - [ErrMissing]: no Signature-Input or Signature header, or one that is
//     not a well-formed RFC 8941 dictionary of the expected shape (labels
//     that do not match, a member that is not an inner list of strings or
//     not a byte sequence). Answer 401 unauthenticated.
//   - [ErrInvalid]: a signature is there but is refused: more than one, a
//     required component not covered or absent from the request, a bad
//     parameter, too old, in the future, expired, a digest mismatch, a
//     signature that does not verify, or a replay ([ErrReplay], which
//     wraps ErrInvalid). Answer 403 permission_denied.
//
// A verification key of the wrong size gives an error that wraps neither: a
// configuration mistake (500). Messages start with "signature: " and say
// what is wrong; they quote what came from the request, shortened.
//
// # Keys
//
// [ParsePublicKey] reads the verification key in the formats
// DISPATCH_VERIFICATION_KEY accepts; [ParsePrivateKey] reads a signing key;
// [EncodePublicKey] and [EncodePrivateKey] write the base64 forms.
package signature
