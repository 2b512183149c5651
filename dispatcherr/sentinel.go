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
