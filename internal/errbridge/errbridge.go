// Package errbridge lets internal/status, the machinery of the SDK's
// errors (classification, markers, conversion to and from the wire), reach
// what the public types of package dispatcherr keep unexported: the
// fields of an Error that only the SDK sets, and the identity of the
// sentinels. Package dispatcherr, a leaf of types users handle, sets the
// functions at init; nothing else does. They take errors, not dispatcherr's
// types, because dispatcherr imports this package.
package errbridge

// Set by package dispatcherr at init.
var (
	// Fields returns pointers to the fields of e, a *dispatcherr.Error,
	// that only the SDK sets: the error's value as it came off the wire
	// (forwarded unchanged when the Error is returned) and the original
	// error rebuilt from it (what Unwrap returns).
	Fields func(e error) (value *[]byte, cause *error)

	// Sentinel reports whether err is one of dispatcherr's sentinels
	// (ErrTimeout, ...), with its status (a dispatcherr.Status) and the
	// name of its variable ("ErrTimeout").
	Sentinel func(err error) (status int32, name string, ok bool)

	// TypeName reports whether err is one of dispatcherr's sentinels of
	// an error type (ErrCanceled), with the Error.type it stands for
	// ("CANCELLED").
	TypeName func(err error) (typ string, ok bool)
)
