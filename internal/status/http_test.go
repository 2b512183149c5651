package status_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/matryer/is"

	"github.com/dispatchkit/dispatch/internal/status"
)

func TestHTTPResponseError(t *testing.T) {
	t.Parallel()
	post := func(raw string) *http.Request {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		return &http.Request{Method: http.MethodPost, URL: u}
	}
	tests := []struct {
		name    string
		resp    *http.Response
		message string // empty: no error
		status  status.Status
	}{
		{
			name:   "200",
			resp:   &http.Response{StatusCode: 200, Status: "200 OK", Request: post("https://x")},
			status: status.OK,
		},
		{
			name:   "204",
			resp:   &http.Response{StatusCode: 204, Request: post("https://x")},
			status: status.OK,
		},
		{
			name:    "503",
			resp:    &http.Response{StatusCode: 503, Status: "503 Service Unavailable", Request: post("https://x")},
			message: "POST https://x: 503 Service Unavailable",
			status:  status.TemporaryError,
		},
		{
			name:    "404 without status line",
			resp:    &http.Response{StatusCode: 404, Request: post("https://api.example.com/orders/1?v=2")},
			message: "POST https://api.example.com/orders/1?v=2: 404 Not Found",
			status:  status.NotFound,
		},
		{
			name:    "password redacted",
			resp:    &http.Response{StatusCode: 401, Status: "401 Unauthorized", Request: post("https://bob:secret@x/")},
			message: "POST https://bob:xxxxx@x/: 401 Unauthorized",
			status:  status.Unauthenticated,
		},
		{
			name:    "no request",
			resp:    &http.Response{StatusCode: 429, Status: "429 Too Many Requests"},
			message: "HTTP 429 Too Many Requests",
			status:  status.Throttled,
		},
		{
			name:    "unknown code",
			resp:    &http.Response{StatusCode: 499},
			message: "HTTP 499",
			status:  status.PermanentError,
		},
		{
			name:    "nil response",
			resp:    nil,
			message: "dispatch: HTTPResponseError called with a nil *http.Response; check the error of the request first",
			status:  status.PermanentError,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			err := status.HTTPResponseError(tt.resp)
			if tt.message == "" {
				is.NoErr(err)
				return
			}
			is.Equal(err.Error(), tt.message)
			is.Equal(status.Of(err), tt.status)
		})
	}
}

// A real exchange: the helper is what a function calls after an HTTP request.
func TestHTTPResponseErrorServer(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "try later", http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()

	resp, err := (&http.Client{Transport: tr}).Post(srv.URL+"/orders", "text/plain", nil)
	is.NoErr(err)
	defer resp.Body.Close()

	err = status.HTTPResponseError(resp)
	is.Equal(err.Error(), "POST "+srv.URL+"/orders: 503 Service Unavailable")
	is.Equal(status.Of(err), status.TemporaryError)
	var httpErr *status.HTTPStatusError
	is.True(errors.As(err, &httpErr))
	is.Equal(httpErr.Code, 503)
}
