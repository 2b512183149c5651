package dispatch

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"buf.build/gen/go/stealthrocket/dispatch-proto/connectrpc/go/dispatch/sdk/v1/sdkv1connect"
	sdkv1 "buf.build/gen/go/stealthrocket/dispatch-proto/protocolbuffers/go/dispatch/sdk/v1"
	"connectrpc.com/connect"
	"github.com/dispatchkit/dispatch/flow"
	"github.com/dispatchkit/dispatch/serde"
	"github.com/matryer/is"
)

// fakeDispatch is a DispatchService that records what it receives and
// answers ids "<prefix>-<n>" in order, checking the bearer token.
type fakeDispatch struct {
	sdkv1connect.UnimplementedDispatchServiceHandler
	key    string
	prefix string
	// answer, if set, replaces the normal answer.
	answer func(req *sdkv1.DispatchRequest) (*sdkv1.DispatchResponse, error)

	mu    sync.Mutex
	auth  []string
	calls []*sdkv1.Call
}

func (f *fakeDispatch) Dispatch(ctx context.Context, req *connect.Request[sdkv1.DispatchRequest]) (*connect.Response[sdkv1.DispatchResponse], error) {
	auth := req.Header().Get("Authorization")
	f.mu.Lock()
	f.auth = append(f.auth, auth)
	f.mu.Unlock()
	if auth != "Bearer "+f.key {
		return nil, connect.NewError(connect.CodeUnauthenticated, errors.New("invalid API key"))
	}
	if f.answer != nil {
		res, err := f.answer(req.Msg)
		if err != nil {
			return nil, err
		}
		return connect.NewResponse(res), nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	res := &sdkv1.DispatchResponse{}
	for _, c := range req.Msg.GetCalls() {
		f.calls = append(f.calls, c)
		res.DispatchIds = append(res.DispatchIds, fmt.Sprintf("%s-%d", f.prefix, len(f.calls)))
	}
	return connect.NewResponse(res), nil
}

func (f *fakeDispatch) received() ([]string, []*sdkv1.Call) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.auth...), append([]*sdkv1.Call(nil), f.calls...)
}

// setupClient starts a fake Dispatch and returns it with an instance
// configured to use it with opts.
func setupClient(t *testing.T, fake *fakeDispatch, opts ...Option) *Dispatch {
	t.Helper()
	if fake.key == "" {
		fake.key = "secret"
	}
	if fake.prefix == "" {
		fake.prefix = "id"
	}
	_, h := sdkv1connect.NewDispatchServiceHandler(fake)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return newTest(t, append([]Option{
		WithAPIURL(srv.URL + "/"), // a trailing slash is fine
		WithAPIKey("secret"),
		WithEndpointURL("http://app.example.com:8000/app"),
		WithHTTPClient(srv.Client()),
	}, opts...)...)
}

// wireCall is what a test expects Dispatch to receive for a call.
type wireCall struct {
	function, endpoint string
	input              any
}

func TestDispatchClient(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		calls []Caller
		want  []wireCall
	}{
		{
			name:  "one call",
			calls: []Caller{rtEcho.Call("hello")},
			want:  []wireCall{{"roottest.echo", "http://app.example.com:8000/app", "hello"}},
		},
		{
			name:  "a batch, in order",
			calls: []Caller{rtEcho.Call("a"), rtDouble.Call(21), rtEcho.Call("b").At("https://other.example.com"), rtDouble.Call(-1)},
			want: []wireCall{
				{"roottest.echo", "http://app.example.com:8000/app", "a"},
				{"roottest.double", "http://app.example.com:8000/app", int64(21)},
				{"roottest.echo", "https://other.example.com", "b"},
				{"roottest.double", "http://app.example.com:8000/app", int64(-1)},
			},
		},
		{
			name:  "Calls",
			calls: callers(rtDouble.Calls(1, 2, 3)),
			want: []wireCall{
				{"roottest.double", "http://app.example.com:8000/app", int64(1)},
				{"roottest.double", "http://app.example.com:8000/app", int64(2)},
				{"roottest.double", "http://app.example.com:8000/app", int64(3)},
			},
		},
		{
			name:  "a function of another application, by name",
			calls: []Caller{flow.NewCall[string]("python_app.summarize", map[string]any{"text": "hi"}).At("https://py.example.com")},
			want:  []wireCall{{"python_app.summarize", "https://py.example.com", map[string]any{"text": "hi"}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			fake := &fakeDispatch{}
			d := setupClient(t, fake)
			ids, err := d.Dispatch(t.Context(), tt.calls...)
			is.NoErr(err)
			want := make([]string, len(tt.calls))
			for i := range want {
				want[i] = fmt.Sprintf("id-%d", i+1)
			}
			is.Equal(ids, want) // ids in the order of the calls
			auth, got := fake.received()
			is.Equal(auth, []string{"Bearer secret"}) // one request, with the bearer token
			is.Equal(len(got), len(tt.want))
			for i, w := range tt.want {
				is.Equal(got[i].GetFunction(), w.function) // function
				is.Equal(got[i].GetEndpoint(), w.endpoint) // endpoint
				var in any
				is.NoErr(serde.Unmarshal(got[i].GetInput(), &in))
				is.Equal(in, w.input) // input
			}
		})
	}
}

func callers[T any](calls []flow.Call[T]) []Caller {
	cs := make([]Caller, len(calls))
	for i, c := range calls {
		cs[i] = c
	}
	return cs
}

func TestDispatchClientErrors(t *testing.T) {
	t.Parallel()
	// An address nothing listens on: a server started and closed.
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()

	tests := []struct {
		name  string
		fake  *fakeDispatch
		opts  []Option
		calls []Caller
		code  connect.Code // 0: not a connect error
		want  []string     // in the message
		sent  int          // requests that reached Dispatch
	}{
		{
			name:  "wrong API key",
			fake:  &fakeDispatch{key: "the-right-one"},
			calls: []Caller{rtEcho.Call("x")},
			code:  connect.CodeUnauthenticated,
			want:  []string{"check " + EnvAPIKey, "invalid API key"},
			sent:  1,
		},
		{
			name: "API key refused",
			fake: &fakeDispatch{answer: func(*sdkv1.DispatchRequest) (*sdkv1.DispatchResponse, error) {
				return nil, connect.NewError(connect.CodePermissionDenied, errors.New("key revoked"))
			}},
			calls: []Caller{rtEcho.Call("x")},
			code:  connect.CodePermissionDenied,
			want:  []string{EnvAPIKey},
			sent:  1,
		},
		{
			name:  "unreachable server",
			fake:  &fakeDispatch{},
			opts:  []Option{WithAPIURL(closed.URL), WithHTTPClient(http.DefaultClient)},
			calls: []Caller{rtEcho.Call("x")},
			code:  connect.CodeUnavailable,
			want:  []string{EnvAPIURL},
		},
		{
			name: "other failure",
			fake: &fakeDispatch{answer: func(*sdkv1.DispatchRequest) (*sdkv1.DispatchResponse, error) {
				return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("calls[0].function: bad"))
			}},
			calls: []Caller{rtEcho.Call("x")},
			code:  connect.CodeInvalidArgument,
			want:  []string{"calls[0].function: bad"},
			sent:  1,
		},
		{
			name: "too few ids",
			fake: &fakeDispatch{answer: func(*sdkv1.DispatchRequest) (*sdkv1.DispatchResponse, error) {
				return &sdkv1.DispatchResponse{DispatchIds: []string{"one"}}, nil
			}},
			calls: []Caller{rtEcho.Call("x"), rtEcho.Call("y")},
			want:  []string{"1 ids for 2 calls"},
			sent:  1,
		},
		{
			name:  "no endpoint URL",
			fake:  &fakeDispatch{},
			opts:  []Option{WithEndpointURL("")},
			calls: []Caller{rtEcho.Call("x").At("https://other.example.com"), rtDouble.Call(1)},
			want:  []string{"call 1", "roottest.double", EnvEndpointURL},
		},
		{
			name:  "an input that cannot be encoded",
			fake:  &fakeDispatch{},
			calls: []Caller{rtEcho.Call("x"), flow.NewCall[int]("roottest.double", make(chan int))},
			want:  []string{"call 1"},
		},
		{
			name:  "no API key",
			fake:  &fakeDispatch{},
			opts:  []Option{WithAPIKey("")},
			calls: []Caller{rtEcho.Call("x")},
			want:  []string{EnvAPIKey},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			d := setupClient(t, tt.fake, tt.opts...)
			ids, err := d.Dispatch(t.Context(), tt.calls...)
			is.True(err != nil) // Dispatch must fail
			is.Equal(ids, nil)
			is.True(strings.HasPrefix(err.Error(), "dispatch: "))
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if tt.code != 0 {
				is.Equal(connect.CodeOf(err), tt.code) // the connect error is wrapped
			}
			auth, _ := tt.fake.received()
			is.Equal(len(auth), tt.sent) // requests that reached Dispatch
		})
	}
}

func TestDispatchNoCalls(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	fake := &fakeDispatch{}
	d := setupClient(t, fake)
	ids, err := d.Dispatch(t.Context())
	is.NoErr(err)
	is.Equal(len(ids), 0)
	auth, _ := fake.received()
	is.Equal(len(auth), 0) // no request
}

// TestFunctionDispatchUsesDefault is not parallel: it changes the default
// instance, which New sets.
func TestFunctionDispatchUsesDefault(t *testing.T) {
	is := is.New(t)
	t.Cleanup(func() { SetDefault(nil) })

	first := &fakeDispatch{prefix: "first"}
	d1 := setupClient(t, first)
	id, err := rtEcho.Dispatch(t.Context(), "one")
	is.NoErr(err)
	is.Equal(id, "first-1") // the last instance created is the default

	second := &fakeDispatch{prefix: "second"}
	d2 := setupClient(t, second)
	id, err = rtDouble.Dispatch(t.Context(), 2)
	is.NoErr(err)
	is.Equal(id, "second-1")

	SetDefault(d1)
	def, err := Default()
	is.NoErr(err)
	is.True(def == d1)
	id, err = rtEcho.Dispatch(t.Context(), "three")
	is.NoErr(err)
	is.Equal(id, "first-2")

	is.NoErr(d2.Close()) // closing another instance keeps the default
	def, err = Default()
	is.NoErr(err)
	is.True(def == d1)

	_, calls := first.received()
	is.Equal(len(calls), 2)
	is.Equal(calls[1].GetFunction(), "roottest.echo")
	var in string
	is.NoErr(serde.Unmarshal(calls[1].GetInput(), &in))
	is.Equal(in, "three")
	is.Equal(calls[1].GetEndpoint(), d1.EndpointURL())

	is.NoErr(d1.Close()) // closing the default clears it
	defaultInstance.Lock()
	is.True(defaultInstance.d == nil)
	defaultInstance.Unlock()
}
