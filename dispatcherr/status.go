package dispatcherr

import (
	"strconv"

	sdkv1 "buf.build/gen/go/stealthrocket/dispatch-proto/protocolbuffers/go/dispatch/sdk/v1"
)

// Status is the outcome of a function call, as reported to Dispatch. The
// values are those of the protocol's dispatch.sdk.v1.Status enumeration,
// named like net/http's status codes; the zero value is not a valid
// status.
type Status int32

// The statuses of the Dispatch protocol, with the numbers of sdkv1.Status.
const (
	// StatusOK: the call succeeded.
	StatusOK Status = 1
	// StatusTimeout: the call did not finish in time. Retried.
	StatusTimeout Status = 2
	// StatusThrottled: the call was rejected because a rate limit was
	// reached. Retried, and Dispatch slows down calls to that endpoint.
	StatusThrottled Status = 3
	// StatusInvalidArgument: the call's input was not acceptable. Not
	// retried.
	StatusInvalidArgument Status = 4
	// StatusInvalidResponse: the function's response could not be
	// understood. Not retried.
	StatusInvalidResponse Status = 5
	// StatusTemporaryError: a failure that may go away if the call is made
	// again. Retried.
	StatusTemporaryError Status = 6
	// StatusPermanentError: a failure that will happen again on every
	// retry, so the call is not retried. The status of errors nothing else
	// classifies.
	StatusPermanentError Status = 7
	// StatusIncompatibleState: the call's saved state cannot be resumed by
	// this build (for example, the function changed between deploys).
	// Dispatch restarts the call from its original input, a bounded number
	// of times.
	StatusIncompatibleState Status = 8
	// StatusDNSError: a host name could not be resolved. Retried.
	StatusDNSError Status = 9
	// StatusTCPError: a connection failed (refused, reset, broken pipe).
	// Retried.
	StatusTCPError Status = 10
	// StatusTLSError: a TLS handshake or certificate check failed.
	// Retried.
	StatusTLSError Status = 11
	// StatusHTTPError: an HTTP exchange failed at the protocol level.
	// Retried.
	StatusHTTPError Status = 12
	// StatusUnauthenticated: credentials are missing or malformed. Not
	// retried.
	StatusUnauthenticated Status = 13
	// StatusPermissionDenied: credentials were presented but refused. Not
	// retried.
	StatusPermissionDenied Status = 14
	// StatusNotFound: the thing asked for does not exist. Not retried.
	StatusNotFound Status = 15
)

var names = [...]string{
	StatusOK:                "OK",
	StatusTimeout:           "TIMEOUT",
	StatusThrottled:         "THROTTLED",
	StatusInvalidArgument:   "INVALID_ARGUMENT",
	StatusInvalidResponse:   "INVALID_RESPONSE",
	StatusTemporaryError:    "TEMPORARY_ERROR",
	StatusPermanentError:    "PERMANENT_ERROR",
	StatusIncompatibleState: "INCOMPATIBLE_STATE",
	StatusDNSError:          "DNS_ERROR",
	StatusTCPError:          "TCP_ERROR",
	StatusTLSError:          "TLS_ERROR",
	StatusHTTPError:         "HTTP_ERROR",
	StatusUnauthenticated:   "UNAUTHENTICATED",
	StatusPermissionDenied:  "PERMISSION_DENIED",
	StatusNotFound:          "NOT_FOUND",
}

// known reports whether s is one of the constants of this package.
func (s Status) known() bool {
	return s >= StatusOK && s <= StatusNotFound
}

// failure reports whether s is a known status other than OK: a status an
// error can have.
func (s Status) failure() bool {
	return s.known() && s != StatusOK
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
	case StatusTimeout, StatusThrottled, StatusTemporaryError, StatusDNSError, StatusTCPError, StatusTLSError, StatusHTTPError:
		return true
	}
	return false
}
