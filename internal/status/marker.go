package status

// explicit is implemented by the errors that carry a status of their own:
// markers, sentinels, [*Error] and [*PanicError]. [Of] lets the outermost of
// them in a chain decide. The method is unexported so that the set stays
// closed: a user type cannot claim a status except through a marker.
type explicit interface {
	error
	explicitStatus() Status
}

// marked is the error returned by [WithStatus] and the Mark functions.
type marked struct {
	err    error
	status Status
}

func (m *marked) Error() string          { return m.err.Error() }
func (m *marked) Unwrap() error          { return m.err }
func (m *marked) explicitStatus() Status { return m.status }

// Is reports whether target is the sentinel of the marker's status, so that
// errors.Is(dispatch.Temporary(err), dispatch.ErrTemporary) holds.
func (m *marked) Is(target error) bool {
	return isSentinelOf(target, m.status)
}

// WithStatus returns an error that wraps err and makes [Of] report s for it,
// whatever err would otherwise be classified as. The returned error has the
// same message as err, and errors.Is and errors.As see through it.
//
// WithStatus returns nil if err is nil, so a function can end with
// "return dispatch.WithStatus(err, s)" after a call that may have succeeded.
// An error cannot have status OK: if s is OK or not a status of the protocol,
// the error is marked PERMANENT_ERROR.
func WithStatus(err error, s Status) error {
	if err == nil {
		return nil
	}
	if !s.failure() {
		s = PermanentError
	}
	return &marked{err: err, status: s}
}

// MarkTemporary marks err as TEMPORARY_ERROR: Dispatch retries the call.
// It returns nil if err is nil. Package dispatch exports it as Temporary.
func MarkTemporary(err error) error { return WithStatus(err, TemporaryError) }

// MarkPermanent marks err as PERMANENT_ERROR: Dispatch does not retry the
// call, even if err would otherwise be classified as a retried network error.
// It returns nil if err is nil. Package dispatch exports it as Permanent.
func MarkPermanent(err error) error { return WithStatus(err, PermanentError) }

// MarkThrottled marks err as THROTTLED: Dispatch retries the call and slows
// down the calls to this endpoint. Return it when a rate limit is hit.
// It returns nil if err is nil. Package dispatch exports it as Throttled.
func MarkThrottled(err error) error { return WithStatus(err, Throttled) }

// MarkIncompatible marks err as INCOMPATIBLE_STATE: Dispatch restarts the
// call from its original input instead of resuming it. Return it when saved
// state cannot be used by this build. It returns nil if err is nil.
// Package dispatch exports it as Incompatible.
func MarkIncompatible(err error) error { return WithStatus(err, IncompatibleState) }

// sentinel is the type of the ErrX values: each stands for one status.
type sentinel struct {
	status Status
	name   string // the variable's name, such as "ErrTimeout"
	msg    string
}

func (e *sentinel) Error() string          { return e.msg }
func (e *sentinel) explicitStatus() Status { return e.status }
func (e *sentinel) typeName() string       { return "dispatch." + e.name }

// Sentinel errors, one for each failure status. They serve two purposes.
//
// Test for a status with errors.Is: errors.Is(err, ErrNotFound) is true when
// err carries status NOT_FOUND explicitly, that is, when its chain holds a
// child call's [*Error] with that status, a marker of that status, or the
// sentinel itself. To learn the status of any error, including network
// errors that are only classified, use [Of].
//
// Return them, wrapped or not, to give an error a status:
// fmt.Errorf("quota of %d reached: %w", n, ErrThrottled) has status
// THROTTLED. A sentinel keeps its identity across a child call, so the
// caller's errors.Is(err, ErrThrottled) holds too.
var (
	ErrTimeout           error = newSentinel(Timeout, "ErrTimeout", "timeout")
	ErrThrottled         error = newSentinel(Throttled, "ErrThrottled", "throttled")
	ErrInvalidArgument   error = newSentinel(InvalidArgument, "ErrInvalidArgument", "invalid argument")
	ErrInvalidResponse   error = newSentinel(InvalidResponse, "ErrInvalidResponse", "invalid response")
	ErrTemporary         error = newSentinel(TemporaryError, "ErrTemporary", "temporary error")
	ErrPermanent         error = newSentinel(PermanentError, "ErrPermanent", "permanent error")
	ErrIncompatibleState error = newSentinel(IncompatibleState, "ErrIncompatibleState", "incompatible state")
	ErrDNS               error = newSentinel(DNSError, "ErrDNS", "DNS error")
	ErrTCP               error = newSentinel(TCPError, "ErrTCP", "TCP error")
	ErrTLS               error = newSentinel(TLSError, "ErrTLS", "TLS error")
	ErrHTTP              error = newSentinel(HTTPError, "ErrHTTP", "HTTP error")
	ErrUnauthenticated   error = newSentinel(Unauthenticated, "ErrUnauthenticated", "unauthenticated")
	ErrPermissionDenied  error = newSentinel(PermissionDenied, "ErrPermissionDenied", "permission denied")
	ErrNotFound          error = newSentinel(NotFound, "ErrNotFound", "not found")
)

// sentinels indexes the sentinels by status and by type name.
var (
	sentinelByStatus = map[Status]*sentinel{}
	sentinelByName   = map[string]*sentinel{}
)

func newSentinel(s Status, name, msg string) *sentinel {
	e := &sentinel{status: s, name: name, msg: "dispatch: " + msg}
	sentinelByStatus[s] = e
	sentinelByName[e.typeName()] = e
	return e
}

// isSentinelOf reports whether target is the sentinel of status s.
func isSentinelOf(target error, s Status) bool {
	t, ok := target.(*sentinel)
	return ok && t.status == s
}
