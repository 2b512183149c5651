package localapi_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/matryer/is"
	"go.uber.org/goleak"

	"github.com/dispatchkit/dispatch/internal/callresult"
	"github.com/dispatchkit/dispatch/internal/localapi"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestCheckKey(t *testing.T) {
	tests := []struct {
		key  string
		want string // "" for a valid key
	}{
		{"order-42", ""},
		{"user:42/checkout?x=1#y", ""},
		{"6f1c2d3e-0000-4000-8000-000000000000", ""},
		{strings.Repeat("~", 255), ""},
		{"!", ""},
		{"", "is empty"},
		{strings.Repeat("k", 256), "is 256 bytes, at most 255"},
		{"order 42", `has the byte 0x20 at 5`},
		{"tab\there", "0x09"},
		{"naïve", "printable ASCII without spaces"},
		{"del\x7f", "0x7f"},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			is := is.New(t)
			err := localapi.CheckKey(tt.key)
			if tt.want == "" {
				is.NoErr(err)
				return
			}
			is.True(err != nil)
			is.True(strings.Contains(err.Error(), tt.want))
		})
	}
}

// Cancel reads the answers of the route, and says what is wrong with a
// server that does not serve it.
func TestCancel(t *testing.T) {
	tests := []struct {
		name    string
		code    int
		body    string
		want    int
		wantErr string
	}{
		{name: "cancelled", code: 200, body: `{"status":"cancelled","calls":3}`, want: 3},
		{name: "already done", code: 200, body: `{"status":"done"}`},
		{name: "unknown", code: 404, body: `{"status":"unknown","error":"server: no call \"x\""}`, wantErr: `server: no call "id/1"`},
		{name: "not the local server", code: 404, body: `404 page not found`, wantErr: "does not cancel calls (HTTP 404): cancelling needs a local Dispatch server"},
		{name: "a wrong key", code: 401, body: "dispatch: missing or wrong API key", wantErr: "refused the API key"},
		{name: "unavailable", code: 503, body: "server: the store cannot write", wantErr: "HTTP 503: server: the store cannot write"},
		{name: "not JSON", code: 200, body: `<html>`, wantErr: "is not JSON"},
		{name: "an unknown status", code: 200, body: `{"status":"maybe"}`, wantErr: `unknown status "maybe"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			var got *http.Request
			var body string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				got, body = r, string(b)
				w.WriteHeader(tt.code)
				io.WriteString(w, tt.body)
			}))
			defer srv.Close()
			res, err := localapi.Cancel(context.Background(), nil, srv.URL+"/", "k", "id/1", "me")
			is.Equal(got.Method, http.MethodPost)
			is.Equal(got.URL.EscapedPath(), "/dispatch.local.v1/calls/id%2F1/cancel")
			is.Equal(got.Header.Get("Authorization"), "Bearer k")
			is.Equal(body, `{"reason":"me"}`)
			if tt.wantErr != "" {
				is.True(err != nil)
				is.True(strings.Contains(err.Error(), tt.wantErr))
				is.Equal(errors.Is(err, callresult.ErrUnknownCall), tt.name == "unknown")
				return
			}
			is.NoErr(err)
			is.Equal(res.Calls, tt.want)
		})
	}
}
