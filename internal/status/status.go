package status

import (
	"strconv"

	sdkv1 "buf.build/gen/go/stealthrocket/dispatch-proto/protocolbuffers/go/dispatch/sdk/v1"
)

// Status is the outcome of a function call, as reported to Dispatch. The
// values are those of the protocol's dispatch.sdk.v1.Status enumeration; the
// zero value is not a valid status.
type Status int32

// The statuses of the Dispatch protocol, with the numbers of sdkv1.Status.
const (
	// OK: the call succeeded.
	OK Status = 1
	// Timeout: the call did not finish in time. Retried.
	Timeout Status = 2
	// Throttled: the call was rejected because a rate limit was reached.
	// Retried, and Dispatch slows down calls to that endpoint.
	Throttled Status = 3
	// InvalidArgument: the call's input was not acceptable. Not retried.
	InvalidArgument Status = 4
	// InvalidResponse: the function's response could not be understood.
	// Not retried.
	InvalidResponse Status = 5
	// TemporaryError: a failure that may go away if the call is made again.
	// Retried.
	TemporaryError Status = 6
	// PermanentError: a failure that will happen again on every retry, so
	// the call is not retried. The status of errors nothing else classifies.
	PermanentError Status = 7
	// IncompatibleState: the call's saved state cannot be resumed by this
	// build (for example, the function changed between deploys). Dispatch
	// restarts the call from its original input, a bounded number of times.
	IncompatibleState Status = 8
	// DNSError: a host name could not be resolved. Retried.
	DNSError Status = 9
	// TCPError: a connection failed (refused, reset, broken pipe). Retried.
	TCPError Status = 10
	// TLSError: a TLS handshake or certificate check failed. Retried.
	TLSError Status = 11
	// HTTPError: an HTTP exchange failed at the protocol level. Retried.
	HTTPError Status = 12
	// Unauthenticated: credentials are missing or malformed. Not retried.
	Unauthenticated Status = 13
	// PermissionDenied: credentials were presented but refused. Not retried.
	PermissionDenied Status = 14
	// NotFound: the thing asked for does not exist. Not retried.
	NotFound Status = 15
)

var names = [...]string{
	OK:                "OK",
	Timeout:           "TIMEOUT",
	Throttled:         "THROTTLED",
	InvalidArgument:   "INVALID_ARGUMENT",
	InvalidResponse:   "INVALID_RESPONSE",
	TemporaryError:    "TEMPORARY_ERROR",
	PermanentError:    "PERMANENT_ERROR",
	IncompatibleState: "INCOMPATIBLE_STATE",
	DNSError:          "DNS_ERROR",
	TCPError:          "TCP_ERROR",
	TLSError:          "TLS_ERROR",
	HTTPError:         "HTTP_ERROR",
	Unauthenticated:   "UNAUTHENTICATED",
	PermissionDenied:  "PERMISSION_DENIED",
	NotFound:          "NOT_FOUND",
}

// known reports whether s is one of the constants of this package.
func (s Status) known() bool {
	return s >= OK && s <= NotFound
}

// failure reports whether s is a known status other than OK: a status an
// error can have.
func (s Status) failure() bool {
	return s.known() && s != OK
}

// String returns the protocol name of s without its STATUS_ prefix, such as
// "TEMPORARY_ERROR", or "Status(n)" for a number the protocol does not define.
func (s Status) String() string {
	if s.known() {
		return names[s]
	}
	return "Status(" + strconv.Itoa(int(s)) + ")"
}

// Proto returns s as the protocol's enumeration value.
func (s Status) Proto() sdkv1.Status {
	return sdkv1.Status(s)
}

// Retried reports whether Dispatch makes the call again after a failure with
// status s: true for TIMEOUT, THROTTLED, TEMPORARY_ERROR, DNS_ERROR,
// TCP_ERROR, TLS_ERROR and HTTP_ERROR.
//
// INCOMPATIBLE_STATE reports false: Dispatch does not retry such a call where
// it stopped, it restarts it from its original input (a bounded number of
// times).
func (s Status) Retried() bool {
	switch s {
	case Timeout, Throttled, TemporaryError, DNSError, TCPError, TLSError, HTTPError:
		return true
	}
	return false
}
