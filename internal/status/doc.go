// Package status is the machinery of the Dispatch SDK's errors: the
// classification of Go errors into statuses ([Of]), the markers user code
// returns to steer retries ([WithStatus] and the Mark functions), panics
// turned into errors ([CatchPanic]), error types that travel
// ([RegisterError]), and the conversion of errors to and from the wire
// ([ToProto], [FromProto]).
//
// The types users handle live in the public leaf package dispatcherr
// (Status, Error, PanicError, HTTPStatusError, the sentinels ErrTimeout,
// ...), with their documentation; this package names them with aliases
// (status.Error is dispatcherr.Error, status.Timeout is
// dispatcherr.StatusTimeout) and reaches their unexported parts through
// internal/errbridge. The root package dispatch re-exports both: the types
// as aliases, the functions as thin wrappers. The names map as follows:
//
//	status.Status, status.Error, ...     dispatch.Status, dispatch.Error, ... (dispatcherr.Status, ...)
//	status.MarkTemporary(err)            dispatch.Temporary(err)
//	status.MarkPermanent(err)            dispatch.Permanent(err)
//	status.MarkThrottled(err)            dispatch.Throttled(err)
//	status.MarkIncompatible(err)         dispatch.Incompatible(err)
//	status.WithStatus(err, s)            dispatch.WithStatus(err, s)
//	status.ErrTimeout, ...               dispatch.ErrTimeout, ... (dispatcherr.ErrTimeout, ...)
//	status.Of(err)                       dispatch.StatusOf(err)
//
// The markers carry a Mark prefix here only because this package also holds
// the constants ([Throttled] is a Status); the root package is free to give
// the markers the short names.
//
// # Who retries what
//
// A function's status decides what Dispatch does next. TIMEOUT, THROTTLED,
// TEMPORARY_ERROR and the transport errors (DNS_ERROR, TCP_ERROR, TLS_ERROR,
// HTTP_ERROR) are retried with exponential back-off until the call expires
// ([Status.Retried]). INCOMPATIBLE_STATE restarts the call from its original
// input. Every other status is final.
//
// # Classification
//
// [Of] maps a Go error to a status. An explicit status always wins: a marker
// ([WithStatus] and the Mark functions), a sentinel such as [ErrThrottled], a
// child call's [*Error], or a [*PanicError]. When an error chain holds several,
// the outermost one decides, so dispatch.Permanent(err) overrides whatever err
// carried. Without an explicit status the chain is matched against these
// classes, in this order (the first match wins):
//
//  1. context.DeadlineExceeded, or any error in the chain whose Timeout()
//     method reports true (net.Error, os.ErrDeadlineExceeded, a DNS lookup
//     that timed out): TIMEOUT.
//  2. *net.DNSError: DNS_ERROR.
//  3. TLS and X.509 errors (any error type from crypto/tls or crypto/x509,
//     such as *tls.CertificateVerificationError, tls.RecordHeaderError,
//     x509.UnknownAuthorityError, x509.HostnameError or a TLS alert):
//     TLS_ERROR.
//  4. ECONNREFUSED, ECONNRESET, ECONNABORTED, EPIPE, and any other
//     *net.OpError: TCP_ERROR.
//  5. [*HTTPStatusError] (from [HTTPResponseError]): [FromHTTPStatus] of its
//     code (PERMANENT_ERROR for a 2xx code, which is no error).
//  6. Anything else: PERMANENT_ERROR.
//
// A non-nil error never has status OK. The order matters because the classes
// overlap: a *net.DNSError and a timed-out *net.OpError are both net.Errors,
// and a failed TLS handshake or DNS lookup arrives wrapped in a *net.OpError.
//
// # Errors across the wire
//
// A failed call result reaches its caller as an [*Error], which keeps the
// error's type name, message and traceback as text. Error types registered
// with [RegisterError] also travel as values, so errors.As finds them on the
// caller's side.
package status
