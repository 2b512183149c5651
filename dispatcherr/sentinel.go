package dispatcherr

// sentinel is the type of the ErrX values: each stands for one status.
type sentinel struct {
	status Status
	name   string // the variable's name, such as "ErrTimeout"
	msg    string
}

func (e *sentinel) Error() string { return e.msg }

func newSentinel(s Status, name, msg string) *sentinel {
	return &sentinel{status: s, name: name, msg: "dispatch: " + msg}
}

// The sentinels, one for each failure status (see "Sentinels" in the
// package documentation): errors.Is(err, ErrNotFound) tests for status
// NOT_FOUND, and fmt.Errorf("...: %w", ErrThrottled) gives an error status
// THROTTLED.
var (
	ErrTimeout           error = newSentinel(StatusTimeout, "ErrTimeout", "timeout")
	ErrThrottled         error = newSentinel(StatusThrottled, "ErrThrottled", "throttled")
	ErrInvalidArgument   error = newSentinel(StatusInvalidArgument, "ErrInvalidArgument", "invalid argument")
	ErrInvalidResponse   error = newSentinel(StatusInvalidResponse, "ErrInvalidResponse", "invalid response")
	ErrTemporary         error = newSentinel(StatusTemporaryError, "ErrTemporary", "temporary error")
	ErrPermanent         error = newSentinel(StatusPermanentError, "ErrPermanent", "permanent error")
	ErrIncompatibleState error = newSentinel(StatusIncompatibleState, "ErrIncompatibleState", "incompatible state")
	ErrDNS               error = newSentinel(StatusDNSError, "ErrDNS", "DNS error")
	ErrTCP               error = newSentinel(StatusTCPError, "ErrTCP", "TCP error")
	ErrTLS               error = newSentinel(StatusTLSError, "ErrTLS", "TLS error")
	ErrHTTP              error = newSentinel(StatusHTTPError, "ErrHTTP", "HTTP error")
	ErrUnauthenticated   error = newSentinel(StatusUnauthenticated, "ErrUnauthenticated", "unauthenticated")
	ErrPermissionDenied  error = newSentinel(StatusPermissionDenied, "ErrPermissionDenied", "permission denied")
	ErrNotFound          error = newSentinel(StatusNotFound, "ErrNotFound", "not found")
)

// typeSentinel is the type of the sentinels that stand for an error type
// rather than a status: errors.Is matches an [Error] of that type.
type typeSentinel struct {
	typ string // the Error.type it matches
	msg string
}

func (e *typeSentinel) Error() string { return e.msg }

// CanceledType is the Error.type of the error of a cancelled call.
const CanceledType = "CANCELLED"

// ErrCanceled is matched with errors.Is by the error of a call that was
// cancelled (dispatch.Dispatch.Cancel, `dispatch cancel`): an [Error] of
// type "CANCELLED" ([CanceledType]) and status PERMANENT_ERROR, since the
// protocol has no status for a cancel (see "Cancelled calls" in the
// package documentation). A workflow whose awaited call was cancelled gets
// that error in its continuation, and so does a wait for a cancelled call.
// Returned by a function (wrapped or not), it fails the call the same way:
// status PERMANENT_ERROR, type "CANCELLED".
var ErrCanceled error = &typeSentinel{typ: CanceledType, msg: "dispatch: cancelled"}
