package server_test

import (
	"context"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	sdkv1 "buf.build/gen/go/stealthrocket/dispatch-proto/protocolbuffers/go/dispatch/sdk/v1"
	"github.com/matryer/is"
	"github.com/rs/zerolog"
	"google.golang.org/protobuf/proto"

	"github.com/dispatchkit/dispatch/internal/signature"
	"github.com/dispatchkit/dispatch/server"
)

// TestEndpointQuery checks that an endpoint URL's query is kept and its
// path prefix too: http://h/admin?x=1 is sent POST
// /admin/dispatch.sdk.v1.FunctionService/Run?x=1, signed (the signature
// does not cover the query), for the default endpoint, a call's own, and
// the children of a poll, which inherit their parent's.
func TestEndpointQuery(t *testing.T) {
	tests := []struct {
		name     string
		suffix   string // of the default endpoint, after the host
		call     string // of the call's own endpoint, "" for the default
		wantPath string
		wantQ    string
	}{
		{"default endpoint", "/admin?x=1&code=k%2Fz", "", "/admin/dispatch.sdk.v1.FunctionService/Run", "x=1&code=k%2Fz"},
		{"default endpoint, no path", "?code=k", "", "/dispatch.sdk.v1.FunctionService/Run", "code=k"},
		{"default endpoint, trailing slash", "/admin/?code=k", "", "/admin/dispatch.sdk.v1.FunctionService/Run", "code=k"},
		{"a call's own", "/admin", "/admin/fn?code=other", "/admin/fn/dispatch.sdk.v1.FunctionService/Run", "code=other"},
		{"no query", "/admin", "", "/admin/dispatch.sdk.v1.FunctionService/Run", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			var verifier *signature.Verifier
			var mu sync.Mutex
			type seen struct{ path, query, function string }
			var got []seen
			var sigErrs []error
			ep := newRawEndpoint(t, func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				mu.Lock()
				v := verifier
				mu.Unlock()
				if err := v.Verify(r, body); err != nil {
					mu.Lock()
					sigErrs = append(sigErrs, err)
					mu.Unlock()
					http.Error(w, err.Error(), http.StatusUnauthorized)
					return
				}
				var req sdkv1.RunRequest
				if err := proto.Unmarshal(body, &req); err != nil {
					http.Error(w, err.Error(), http.StatusBadRequest)
					return
				}
				mu.Lock()
				got = append(got, seen{r.URL.Path, r.URL.RawQuery, req.GetFunction()})
				mu.Unlock()
				if req.GetFunction() == "parent" && req.GetInput() != nil {
					writeProto(w, poll("s", 1, 1, time.Hour, child(1, "child", "")))
					return
				}
				writeProto(w, output("ok"))
			})
			srv, err := server.New(server.Config{
				Endpoint: ep.URL + tt.suffix,
				Memory:   true,
				Logger:   zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel),
			})
			is.NoErr(err)
			pub, err := signature.ParsePublicKey(srv.VerificationKey())
			is.NoErr(err)
			mu.Lock()
			verifier = signature.NewVerifier(pub)
			mu.Unlock()
			is.NoErr(srv.Start(context.Background()))
			defer srv.Close()
			b := &bundle{srv: srv, client: newDispatchClient(srv)}
			c := call("parent", "")
			if tt.call != "" {
				c.Endpoint = ep.URL + tt.call
			}
			id := b.dispatch(t, c)[0]
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			o, err := srv.Result(ctx, id)
			is.NoErr(err)
			is.Equal(o.Status, sdkv1.Status_STATUS_OK)
			mu.Lock()
			defer mu.Unlock()
			is.Equal(sigErrs, []error(nil)) // signed, the query aside
			is.Equal(len(got), 3)           // the parent, its child, its resume
			for _, s := range got {
				is.Equal(s.path, tt.wantPath) // the path prefix kept, the procedure after it
				is.Equal(s.query, tt.wantQ)   // the query kept
			}
		})
	}
}
