package dispatch

import (
	"net/http"

	"github.com/dispatchkit/dispatch/dispatcherr"
	"github.com/dispatchkit/dispatch/internal/status"
)

// The error vocabulary lives in package dispatcherr, a leaf of types that
// package flow uses too; the names below are aliases, for convenience, and
// the documentation is on the types there.

// Status is [dispatcherr.Status]: the outcome of a function run, as
// Dispatch sees it, which decides whether Dispatch retries the call. See
// the table in the package documentation.
type Status = dispatcherr.Status

// The statuses of the protocol, named like net/http's status codes (see
// [dispatcherr.StatusOK] and the others).
const (
	StatusOK                = dispatcherr.StatusOK
	StatusTimeout           = dispatcherr.StatusTimeout
	StatusThrottled         = dispatcherr.StatusThrottled
	StatusInvalidArgument   = dispatcherr.StatusInvalidArgument
	StatusInvalidResponse   = dispatcherr.StatusInvalidResponse
	StatusTemporaryError    = dispatcherr.StatusTemporaryError
	StatusPermanentError    = dispatcherr.StatusPermanentError
	StatusIncompatibleState = dispatcherr.StatusIncompatibleState
	StatusDNSError          = dispatcherr.StatusDNSError
	StatusTCPError          = dispatcherr.StatusTCPError
	StatusTLSError          = dispatcherr.StatusTLSError
	StatusHTTPError         = dispatcherr.StatusHTTPError
	StatusUnauthenticated   = dispatcherr.StatusUnauthenticated
	StatusPermissionDenied  = dispatcherr.StatusPermissionDenied
	StatusNotFound          = dispatcherr.StatusNotFound
)

// Error is [dispatcherr.Error]: the failure of a call as its caller
// receives it, keeping the status, type and message of the original error.
// errors.Is matches the sentinel of its status ([ErrTimeout], ...), and
// errors.As finds error types registered with [RegisterError].
type Error = dispatcherr.Error

// PanicError is [dispatcherr.PanicError]: the error of a function or
// continuation that panicked, with status PERMANENT_ERROR.
type PanicError = dispatcherr.PanicError

// HTTPStatusError is [dispatcherr.HTTPStatusError]: an HTTP response that
// was not a success, classified by its status code (see
// [HTTPResponseError]).
type HTTPStatusError = dispatcherr.HTTPStatusError

// The sentinels of the statuses ([dispatcherr.ErrTimeout] and the others):
// matched with errors.Is by the errors of that status, and usable as
// markers: fmt.Errorf("quota: %w", ErrThrottled) has status THROTTLED.
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

// ErrCanceled is [dispatcherr.ErrCanceled]: errors.Is matches it for the
// error of a call that was cancelled ([Dispatch.Cancel], `dispatch
// cancel`), which has status PERMANENT_ERROR and type "CANCELLED".
var ErrCanceled = dispatcherr.ErrCanceled

// Temporary marks err as temporary: Dispatch retries the call, with
// exponential backoff, until it succeeds or expires. A nil err stays nil.
func Temporary(err error) error { return status.MarkTemporary(err) }

// Permanent marks err as permanent: Dispatch does not retry the call.
func Permanent(err error) error { return status.MarkPermanent(err) }

// Throttled marks err as a sign of overload (a rate limit, say): Dispatch
// retries the call and slows down the calls to this endpoint.
func Throttled(err error) error { return status.MarkThrottled(err) }

// Incompatible marks err as an incompatible state: Dispatch restarts the
// call from its original input (a bounded number of times).
func Incompatible(err error) error { return status.MarkIncompatible(err) }

// WithStatus marks err with any status s.
func WithStatus(err error, s Status) error { return status.WithStatus(err, s) }

// StatusOf returns the status a function returning err would have: an
// explicit marker wins, then the classification of Go errors in the package
// documentation (timeouts, DNS, TLS, TCP errors, HTTP statuses), else
// PERMANENT_ERROR. A nil err is OK.
func StatusOf(err error) Status { return status.Of(err) }

// StatusOfHTTP returns the status of an HTTP response code: 429 is
// THROTTLED, 5xx TEMPORARY_ERROR (501 PERMANENT_ERROR), 408 TIMEOUT, and so
// on (see the package documentation).
func StatusOfHTTP(code int) Status { return status.FromHTTPStatus(code) }

// HTTPResponseError returns nil for a 2xx response and otherwise an error
// classified by the response's status code, so that a function can write:
//
//	res, err := http.DefaultClient.Do(req)
//	if err != nil {
//		return out, err // classified: DNS, TCP, TLS errors, timeouts
//	}
//	defer res.Body.Close()
//	if err := dispatch.HTTPResponseError(res); err != nil {
//		return out, err // 429 is retried slowly, 5xx retried, 4xx not
//	}
func HTTPResponseError(res *http.Response) error { return status.HTTPResponseError(res) }

// RegisterError registers the error type E under a stable name, so that
// errors of that type cross the wire as values and errors.As finds them in
// the caller (see [Error]). Only exported fields travel. It panics if the
// name is invalid or taken; [RegisterErrorSafely] returns the error.
func RegisterError[E error](name string) { status.RegisterError[E](name) }

// RegisterErrorSafely is [RegisterError] returning an error instead of
// panicking.
func RegisterErrorSafely[E error](name string) error { return status.RegisterErrorSafely[E](name) }
