// Package dispatcherr is the error vocabulary of the Dispatch SDK: the
// types and values that programs handle when calls fail. It holds types
// only (river's rivertype is the model): the [Status] of a finished call,
// the [Error] a caller receives for a failed call, [PanicError] and
// [HTTPStatusError], the sentinels [ErrTimeout], [ErrThrottled], ... of
// the statuses, and [ErrCanceled] for cancelled calls. It imports no other package of the SDK, so package
// dispatch and package flow both use it; package dispatch re-exports each
// name (dispatch.Error is dispatcherr.Error, dispatch.StatusTimeout is
// [StatusTimeout], ...), and its functions make and classify errors:
// dispatch.Temporary, dispatch.Permanent, dispatch.Throttled,
// dispatch.WithStatus mark an error, dispatch.StatusOf returns the status
// of any error, dispatch.RegisterError makes an error type travel.
//
// # Statuses and retries
//
// A function's status decides what Dispatch does next. TIMEOUT, THROTTLED,
// TEMPORARY_ERROR and the transport errors (DNS_ERROR, TCP_ERROR,
// TLS_ERROR, HTTP_ERROR) are retried with exponential back-off until the
// call expires ([Status.Retried]); THROTTLED also slows down the calls to
// the endpoint. INCOMPATIBLE_STATE restarts the call from its original
// input, a bounded number of times. Every other status is final.
//
// # Errors across the wire
//
// A failed call reaches its caller (a workflow's continuation, or
// dispatch.Wait) as an [*Error], which keeps the status, the type name,
// the message and the traceback of the original error:
//
//	var e *dispatcherr.Error
//	if errors.As(err, &e) && e.Status == dispatcherr.StatusNotFound {
//		...
//	}
//
// errors.Is matches the sentinel of its status (errors.Is(err, ErrTimeout)
// for a call that timed out, whichever way: a flow.Timeout that passed,
// an expired call, a function that failed with TIMEOUT). When the original
// error's type was registered with dispatch.RegisterError, errors.As finds
// it rebuilt; the sentinels, [*HTTPStatusError] and [*PanicError] need no
// registration.
//
// # Cancelled calls
//
// The protocol has no status for a cancelled call. A call cancelled
// through the local Dispatch server (dispatch.Dispatch.Cancel, `dispatch
// cancel`), with its whole tree of children, fails with status
// PERMANENT_ERROR, which is final and never retried, and an [Error] of
// type "CANCELLED" ([CanceledType]) whose message says who cancelled.
// errors.Is(err, [ErrCanceled]) matches it by that type, as
// errors.Is(err, [ErrTimeout]) matches TIMEOUT by status; errors.Is(err,
// [ErrPermanent]) holds too. The parent of the cancelled call receives it
// in its continuation, like any failure of a child, and may handle it;
// passed on (returned, wrapped or not), it keeps its type, so the
// workflow's own caller sees a cancel too.
//
// # Sentinels
//
// The sentinels serve two purposes. Test for a status with errors.Is:
// errors.Is(err, ErrNotFound) is true when err carries status NOT_FOUND
// explicitly (a child call's [*Error] with that status, a marker of that
// status, or the sentinel itself). Return them, wrapped or not, to give an
// error a status: fmt.Errorf("quota of %d reached: %w", n, ErrThrottled)
// has status THROTTLED, and keeps its identity across a child call, so the
// caller's errors.Is(err, ErrThrottled) holds too. To learn the status of
// any error, including network errors that are only classified, use
// dispatch.StatusOf.
package dispatcherr
