package signature

import (
	"errors"
	"fmt"
)

// ErrMissing is wrapped by verification errors when the request carries no
// signature, or signature headers that cannot be parsed. The endpoint answers
// such requests with 401 unauthenticated.
var ErrMissing = errors.New("signature: missing or malformed signature headers")

// ErrInvalid is wrapped by verification errors when the request is signed but
// the signature is refused: it does not verify, the digest does not match the
// body, it is too old or in the future, or its parameters or covered
// components are not the ones this protocol requires. The endpoint answers
// such requests with 403 permission_denied.
var ErrInvalid = errors.New("signature: invalid signature")

// ErrReplay is wrapped by the verification error of a request whose
// signature was already accepted by the same [Verifier] (see "Replays" in
// the package doc). It wraps [ErrInvalid]: the endpoint answers 403
// permission_denied.
var ErrReplay = fmt.Errorf("%w: replayed request", ErrInvalid)

// sigError is a verification error: its own message, and the sentinel it
// wraps.
type sigError struct {
	kind error
	msg  string
}

func (e *sigError) Error() string { return "signature: " + e.msg }
func (e *sigError) Unwrap() error { return e.kind }

func missingf(format string, args ...any) error {
	return &sigError{kind: ErrMissing, msg: fmt.Sprintf(format, args...)}
}

func invalidf(format string, args ...any) error {
	return &sigError{kind: ErrInvalid, msg: fmt.Sprintf(format, args...)}
}
