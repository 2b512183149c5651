package server_test

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	sdkv1 "buf.build/gen/go/stealthrocket/dispatch-proto/protocolbuffers/go/dispatch/sdk/v1"
	"connectrpc.com/connect"
	"github.com/matryer/is"
	"github.com/rs/zerolog"

	"github.com/dispatchkit/dispatch/internal/store"
	"github.com/dispatchkit/dispatch/server"
)

// TestDispatchEndpointPolicy checks which endpoints a DispatchRequest may
// name: Config.Endpoint (and below its path) and Config.AllowEndpoints,
// never URLs with credentials or a fragment; the others are refused with
// INVALID_ARGUMENT naming the call, the endpoint and how to allow it, and
// nothing is recorded.
func TestDispatchEndpointPolicy(t *testing.T) {
	tests := []struct {
		name     string
		allow    []string
		endpoint string   // "{ep}" is the default endpoint's URL, "{port}" its port
		want     []string // in the error; nil when accepted
	}{
		{"the default", nil, "{ep}", nil},
		{"below the default's path", nil, "{ep}/app", nil},
		{"the default with a query", nil, "{ep}?code=k", nil},
		{"another loopback port", nil, "http://127.0.0.1:1", []string{"call 1", `endpoint "http://127.0.0.1:1" is not allowed`, "--allow-endpoint", "server.Config.AllowEndpoints"}},
		{"localhost, not the default's host", nil, "http://localhost:{port}", []string{"not allowed"}},
		{"the metadata service", nil, "http://169.254.169.254/latest/meta-data", []string{"not allowed"}},
		{"the unspecified address", nil, "http://0.0.0.0:{port}", []string{"not allowed"}},
		{"link-local IPv6", nil, "http://[fe80::1]:80", []string{"not allowed"}},
		{"an external host", nil, "https://example.com", []string{"not allowed"}},
		{"credentials on the default", nil, "http://user:secret@127.0.0.1:{port}", []string{"credentials"}},
		{"a user on the default", nil, "http://user@127.0.0.1:{port}", []string{"credentials"}},
		{"a fragment on the default", nil, "{ep}/#x", []string{"fragment"}},
		{"loopback allows another port", []string{"loopback"}, "http://127.0.0.1:1", nil},
		{"loopback allows localhost", []string{"loopback"}, "http://localhost:1", nil},
		{"loopback does not allow the metadata service", []string{"loopback"}, "http://169.254.169.254", []string{"not allowed", "it allows loopback"}},
		{"a pattern with a path", []string{"http://127.0.0.1:*/fn"}, "http://127.0.0.1:1/fn/x", nil},
		{"a pattern with a path, outside it", []string{"http://127.0.0.1:*/fn"}, "http://127.0.0.1:1/fnx", []string{"not allowed"}},
		{"* allows anything", []string{"*"}, "http://127.0.0.1:1/any", nil},
		{"* still refuses credentials", []string{"*"}, "http://user:secret@127.0.0.1:1", []string{"credentials"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			b := setup(t, allow(tt.allow...))
			b.ep.handle("echo", echo)
			port := b.ep.URL()[strings.LastIndexByte(b.ep.URL(), ':')+1:]
			c := call("elsewhere", "")
			c.Endpoint = strings.NewReplacer("{ep}", b.ep.URL(), "{port}", port).Replace(tt.endpoint)
			_, err := b.send(call("echo", "first"), c)
			if tt.want == nil {
				is.NoErr(err)
				return
			}
			is.Equal(connect.CodeOf(err), connect.CodeInvalidArgument)
			for _, w := range tt.want {
				is.True(strings.Contains(err.Error(), w)) // says which call, why, and how to allow it
			}
			is.True(!strings.Contains(err.Error(), "secret")) // never echoes a password
			calls, err := b.srv.Store().ListCalls(context.Background(), store.ListOptions{})
			is.NoErr(err)
			is.Equal(len(calls), 0) // none recorded
			is.Equal(b.ep.count("echo"), 0)
		})
	}
}

// TestTailCallRefused checks that a tail call the server would refuse in a
// DispatchRequest fails the call with INVALID_ARGUMENT, as any invalid
// tail call does, and is not sent.
func TestTailCallRefused(t *testing.T) {
	tests := []struct {
		name string
		tail *sdkv1.Call
		want string
	}{
		{"endpoint not allowed", &sdkv1.Call{Function: "echo", Endpoint: "http://169.254.169.254/"}, `endpoint "http://169.254.169.254/" is not allowed`},
		{"credentials", &sdkv1.Call{Function: "echo", Endpoint: "http://u:p@127.0.0.1:1/"}, "credentials"},
		{"a fragment", &sdkv1.Call{Function: "echo", Endpoint: "http://127.0.0.1:1/#f"}, "fragment"},
		{"function name over 256 bytes", &sdkv1.Call{Function: strings.Repeat("f", 300)}, "function name is 300 bytes, at most 256"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			b := setup(t)
			b.ep.handle("echo", echo)
			b.ep.handle("tail", func(req *sdkv1.RunRequest) (*sdkv1.RunResponse, error) {
				return &sdkv1.RunResponse{Directive: &sdkv1.RunResponse_Exit{Exit: &sdkv1.Exit{TailCall: tt.tail}}}, nil
			})
			id := b.dispatch(t, call("tail", ""))[0]
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			o, err := b.srv.Result(ctx, id)
			is.NoErr(err)
			is.Equal(o.Status, sdkv1.Status_STATUS_INVALID_ARGUMENT)
			is.Equal(o.Result.GetError().GetType(), "INVALID_ARGUMENT")
			msg := o.Result.GetError().GetMessage()
			is.True(strings.HasPrefix(msg, "dispatch: invalid tail call: "))
			is.True(strings.Contains(msg, tt.want)) // says why
			is.Equal(b.ep.count("echo"), 0)         // not followed
		})
	}
}

// TestRedirectNotFollowed checks that the server does not follow an
// endpoint's redirect: it would send the signed request to a URL the
// endpoint policy never saw. The call fails with PERMANENT_ERROR.
func TestRedirectNotFollowed(t *testing.T) {
	is := is.New(t)
	var elsewhere atomic.Int32
	target := newRawEndpoint(t, func(w http.ResponseWriter, r *http.Request) {
		elsewhere.Add(1)
		writeProto(w, output("redirected"))
	})
	redirecting := newRawEndpoint(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL+r.URL.Path, http.StatusTemporaryRedirect)
	})
	b := setup(t, allow(redirecting.URL, target.URL))
	c := call("f", "")
	c.Endpoint = redirecting.URL
	id := b.dispatch(t, c)[0]
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	o, err := b.srv.Result(ctx, id)
	is.NoErr(err)
	is.Equal(o.Status, sdkv1.Status_STATUS_PERMANENT_ERROR)
	is.True(strings.Contains(o.Result.GetError().GetMessage(), "307"))
	is.Equal(elsewhere.Load(), int32(0)) // never sent there
}

// TestRecoveredCallRefused checks that a call recovered after a restart
// with a stricter endpoint policy fails with INVALID_ARGUMENT rather than
// being sent where the policy no longer allows.
func TestRecoveredCallRefused(t *testing.T) {
	is := is.New(t)
	dir := t.TempDir()
	ep := newTestEndpoint(t, "")
	var runs atomic.Int32
	other := newRawEndpoint(t, func(w http.ResponseWriter, r *http.Request) {
		runs.Add(1)
		httpAnswer(http.StatusServiceUnavailable)(w) // retried until the restart
	})
	cfg := server.Config{
		Endpoint:   ep.URL(),
		StateDir:   dir,
		MinBackoff: time.Millisecond,
		MaxBackoff: 10 * time.Millisecond,
		Logger:     zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel),
	}
	first := cfg
	first.AllowEndpoints = []string{other.URL}
	b1 := startServer(t, ep, first)
	c := call("f", "")
	c.Endpoint = other.URL
	id := b1.dispatch(t, c)[0]
	waitFor(t, "a failed attempt", func() bool { return runs.Load() > 0 })
	is.NoErr(b1.srv.Close())
	sent := runs.Load()

	b2 := startServer(t, ep, cfg) // other.URL is no longer allowed
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	o, err := b2.srv.Result(ctx, id)
	is.NoErr(err)
	is.Equal(o.Status, sdkv1.Status_STATUS_INVALID_ARGUMENT)
	is.True(strings.Contains(o.Result.GetError().GetMessage(), "recovered after a restart"))
	is.True(strings.Contains(o.Result.GetError().GetMessage(), "--allow-endpoint"))
	is.Equal(runs.Load(), sent) // not sent again
}
