package status

import (
	"errors"
	"net/http"

	"github.com/dispatchkit/dispatch/dispatcherr"
)

// FromHTTPStatus returns the status of a call that received an HTTP response
// with the given status code:
//
//	2xx                   OK
//	400 Bad Request       INVALID_ARGUMENT
//	401 Unauthorized      UNAUTHENTICATED
//	403 Forbidden         PERMISSION_DENIED
//	404 Not Found         NOT_FOUND
//	408 Request Timeout   TIMEOUT
//	429 Too Many Requests THROTTLED
//	501 Not Implemented   PERMANENT_ERROR
//	other 5xx             TEMPORARY_ERROR
//	other 1xx, 3xx, 4xx   PERMANENT_ERROR
//
// A code outside 100–599 is not an HTTP status and gives PERMANENT_ERROR.
func FromHTTPStatus(code int) Status {
	switch code {
	case http.StatusBadRequest:
		return InvalidArgument
	case http.StatusUnauthorized:
		return Unauthenticated
	case http.StatusForbidden:
		return PermissionDenied
	case http.StatusNotFound:
		return NotFound
	case http.StatusRequestTimeout:
		return Timeout
	case http.StatusTooManyRequests:
		return Throttled
	case http.StatusNotImplemented:
		return PermanentError
	}
	switch {
	case code >= 200 && code <= 299:
		return OK
	case code >= 500 && code <= 599:
		return TemporaryError
	}
	return PermanentError
}

// HTTPStatusError reports an HTTP response whose status code is not 2xx:
// [dispatcherr.HTTPStatusError], where its documentation lives.
// [HTTPResponseError] makes one; [Of] gives it the status
// [FromHTTPStatus](Code). It is registered for the wire under the name
// "dispatch.HTTPStatusError".
type HTTPStatusError = dispatcherr.HTTPStatusError

// HTTPResponseError returns nil if resp has a 2xx status code, and an
// [*HTTPStatusError] otherwise, which makes the call fail with the status
// that [FromHTTPStatus] gives the code (503 is retried, 404 is not):
//
//	resp, err := http.DefaultClient.Do(req)
//	if err != nil {
//		return err // classified: DNS_ERROR, TCP_ERROR, TIMEOUT, ...
//	}
//	defer resp.Body.Close()
//	if err := dispatch.HTTPResponseError(resp); err != nil {
//		return err
//	}
//
// HTTPResponseError does not read or close the body.
func HTTPResponseError(resp *http.Response) error {
	if resp == nil {
		return errNilResponse
	}
	if resp.StatusCode >= 200 && resp.StatusCode <= 299 {
		return nil
	}
	e := &HTTPStatusError{Code: resp.StatusCode, Status: resp.Status}
	if req := resp.Request; req != nil {
		e.Method = req.Method
		if e.Method == "" {
			e.Method = http.MethodGet
		}
		if req.URL != nil {
			e.URL = req.URL.Redacted()
		}
	}
	return e
}

var errNilResponse = errors.New("dispatch: HTTPResponseError called with a nil *http.Response; check the error of the request first")
