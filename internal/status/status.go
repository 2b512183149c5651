package status

import "github.com/dispatchkit/dispatch/dispatcherr"

// Status is the outcome of a function call: [dispatcherr.Status], where its
// documentation lives.
type Status = dispatcherr.Status

// The statuses of the Dispatch protocol (see dispatcherr).
const (
	OK                = dispatcherr.StatusOK
	Timeout           = dispatcherr.StatusTimeout
	Throttled         = dispatcherr.StatusThrottled
	InvalidArgument   = dispatcherr.StatusInvalidArgument
	InvalidResponse   = dispatcherr.StatusInvalidResponse
	TemporaryError    = dispatcherr.StatusTemporaryError
	PermanentError    = dispatcherr.StatusPermanentError
	IncompatibleState = dispatcherr.StatusIncompatibleState
	DNSError          = dispatcherr.StatusDNSError
	TCPError          = dispatcherr.StatusTCPError
	TLSError          = dispatcherr.StatusTLSError
	HTTPError         = dispatcherr.StatusHTTPError
	Unauthenticated   = dispatcherr.StatusUnauthenticated
	PermissionDenied  = dispatcherr.StatusPermissionDenied
	NotFound          = dispatcherr.StatusNotFound
)

// failure reports whether s is a status of the protocol other than OK: a
// status an error can have.
func failure(s Status) bool {
	return s > OK && s <= NotFound
}
