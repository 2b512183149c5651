package dispatcherr

import "github.com/dispatchkit/dispatch/internal/errbridge"

// Error is the failure of a call as its caller receives it: in a workflow,
// the error a continuation gets when an awaited call failed; from
// dispatch.Wait, the error of a call that failed for good. It keeps the
// status, type and message of the original error (and its traceback, for
// a panic), so returning it (or wrapping it with %w) fails the caller with
// the same status.
//
// When the original error's type was registered with
// dispatch.RegisterError, or was one of the sentinels, Unwrap returns that
// error rebuilt, and errors.As and errors.Is find it. Otherwise only the
// type name and message are known. errors.Is matches the sentinel of the
// Error's status in any case ([ErrTimeout], [ErrNotFound], ...).
type Error struct {
	// Status is the status the call failed with.
	Status Status
	// Type names the type of the original error: the name it was registered
	// with, or its Go type as printed by %T (such as "*myapp.NotReady").
	// Other SDKs put their own type names here, such as "ValueError".
	Type string
	// Message is the original error's message.
	Message string
	// Traceback is the stack where the error happened, if known, in the
	// format of the language that produced it. Go functions send the stack
	// of a panic.
	Traceback []byte
	// DispatchID is the dispatch id of the call that failed, if known.
	DispatchID string

	value []byte // the encoded value, kept to forward it unchanged
	cause error  // the original error rebuilt from value, or nil
}

// status returns e.Status, or PERMANENT_ERROR if e.Status is not a failure:
// an error never has status OK.
func (e *Error) status() Status {
	if e != nil && e.Status.failure() {
		return e.Status
	}
	return StatusPermanentError
}

// Error returns the status, type and message, as in
// "TEMPORARY_ERROR: *myapp.NotReady: not ready yet".
func (e *Error) Error() string {
	s := e.status().String()
	if e == nil {
		return s
	}
	if e.Type != "" {
		s += ": " + e.Type
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// Unwrap returns the original error if it could be rebuilt, or nil.
func (e *Error) Unwrap() error {
	if e == nil {
		return nil
	}
	return e.cause
}

// Is reports whether target is the sentinel of e's status, such as
// [ErrNotFound] for an Error with status NOT_FOUND (a Status that is not a
// failure counts as PERMANENT_ERROR), or [ErrCanceled] for an Error of
// type "CANCELLED".
func (e *Error) Is(target error) bool {
	switch t := target.(type) {
	case *sentinel:
		return t.status == e.status()
	case *typeSentinel:
		return e != nil && e.Type == t.typ
	}
	return false
}

func init() {
	errbridge.Fields = func(err error) (*[]byte, *error) {
		e := err.(*Error)
		return &e.value, &e.cause
	}
	errbridge.Sentinel = func(err error) (int32, string, bool) {
		s, ok := err.(*sentinel)
		if !ok || s == nil {
			return 0, "", false
		}
		return int32(s.status), s.name, true
	}
	errbridge.TypeName = func(err error) (string, bool) {
		if s, ok := err.(*typeSentinel); ok && s != nil {
			return s.typ, true
		}
		return "", false
	}
}
