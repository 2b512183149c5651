package dispatcherr

import (
	"net/http"
	"strconv"
)

// HTTPStatusError reports an HTTP response whose status code is not 2xx.
// dispatch.HTTPResponseError makes one; its status is that of its code
// (dispatch.StatusOfHTTP: 429 THROTTLED, 5xx TEMPORARY_ERROR but 501, 404
// NOT_FOUND, ...). It travels under the name "dispatch.HTTPStatusError",
// so a caller of a function that failed with it gets it back with
// errors.As.
type HTTPStatusError struct {
	// Method is the request's method, such as "POST"; empty if unknown.
	Method string
	// URL is the request's URL with any password redacted; empty if unknown.
	URL string
	// Code is the response's status code, such as 503.
	Code int
	// Status is the response's status line, such as "503 Service Unavailable".
	Status string
}

// Error returns the request and the response status, as in
// "POST https://example.com/orders: 503 Service Unavailable".
func (e *HTTPStatusError) Error() string {
	status := e.Status
	if status == "" {
		status = strconv.Itoa(e.Code)
		if text := http.StatusText(e.Code); text != "" {
			status += " " + text
		}
	}
	switch {
	case e.Method != "" && e.URL != "":
		return e.Method + " " + e.URL + ": " + status
	case e.URL != "":
		return e.URL + ": " + status
	}
	return "HTTP " + status
}
