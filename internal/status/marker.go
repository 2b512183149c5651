package status

import (
	"github.com/dispatchkit/dispatch/dispatcherr"
	"github.com/dispatchkit/dispatch/internal/errbridge"
)

// marked is the error returned by [WithStatus] and the Mark functions.
type marked struct {
	err    error
	status Status
}

func (m *marked) Error() string { return m.err.Error() }
func (m *marked) Unwrap() error { return m.err }

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
	if !failure(s) {
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

// The sentinels of dispatcherr, where their documentation lives, one for
// each failure status.
var (
	ErrTimeout           = dispatcherr.ErrTimeout
	ErrThrottled         = dispatcherr.ErrThrottled
	ErrInvalidArgument   = dispatcherr.ErrInvalidArgument
	ErrInvalidResponse   = dispatcherr.ErrInvalidResponse
	ErrTemporary         = dispatcherr.ErrTemporary
	ErrPermanent         = dispatcherr.ErrPermanent
	ErrIncompatibleState = dispatcherr.ErrIncompatibleState
	ErrDNS               = dispatcherr.ErrDNS
	ErrTCP               = dispatcherr.ErrTCP
	ErrTLS               = dispatcherr.ErrTLS
	ErrHTTP              = dispatcherr.ErrHTTP
	ErrUnauthenticated   = dispatcherr.ErrUnauthenticated
	ErrPermissionDenied  = dispatcherr.ErrPermissionDenied
	ErrNotFound          = dispatcherr.ErrNotFound
)

// sentinelByName indexes the sentinels by their type name on the wire
// ("dispatch.ErrTimeout"), to rebuild them.
var sentinelByName = func() map[string]error {
	m := map[string]error{}
	for _, e := range []error{
		ErrTimeout, ErrThrottled, ErrInvalidArgument, ErrInvalidResponse, ErrTemporary,
		ErrPermanent, ErrIncompatibleState, ErrDNS, ErrTCP, ErrTLS, ErrHTTP,
		ErrUnauthenticated, ErrPermissionDenied, ErrNotFound,
	} {
		_, name, _ := sentinelOf(e)
		m[reservedPrefix+name] = e
	}
	return m
}()

// sentinelOf reports whether err is one of the sentinels, with its status
// and the name of its variable ("ErrTimeout").
func sentinelOf(err error) (Status, string, bool) {
	s, name, ok := errbridge.Sentinel(err)
	return Status(s), name, ok
}

// isSentinelOf reports whether target is the sentinel of status s.
func isSentinelOf(target error, s Status) bool {
	t, _, ok := sentinelOf(target)
	return ok && t == s
}
