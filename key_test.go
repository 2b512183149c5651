package dispatch_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"buf.build/gen/go/stealthrocket/dispatch-proto/connectrpc/go/dispatch/sdk/v1/sdkv1connect"
	sdkv1 "buf.build/gen/go/stealthrocket/dispatch-proto/protocolbuffers/go/dispatch/sdk/v1"
	"connectrpc.com/connect"
	"github.com/matryer/is"
	"github.com/rs/zerolog"

	"github.com/dispatchkit/dispatch"
)

// Functions of the tests of keys, waits and cancels (names "roottest.").
var (
	ktSquare = dispatch.Func("roottest.keys.square", func(ctx context.Context, n int) (int, error) {
		if n < 0 {
			return 0, dispatch.Permanent(errors.New("roottest: negative"))
		}
		return n * n, nil
	})
	ktEcho = dispatch.Func("roottest.keys.echo", func(ctx context.Context, s string) (string, error) {
		return s, nil
	})
)

func TestDispatchKey(t *testing.T) {
	for _, m := range sdkModes {
		t.Run(m.name, func(t *testing.T) {
			is := is.New(t)
			d, _ := m.start(t)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()

			id, err := ktSquare.DispatchKey(ctx, "square-7", 7)
			is.NoErr(err)
			again, err := ktSquare.DispatchKey(ctx, "square-7", 7)
			is.NoErr(err)
			is.Equal(again, id) // started once
			n, err := ktSquare.Wait(ctx, id)
			is.NoErr(err)
			is.Equal(n, 49)

			// Other calls with the key are refused, naming it.
			_, err = ktSquare.DispatchKey(ctx, "square-7", 8)
			is.True(errors.Is(err, dispatch.ErrKeyConflict))
			is.True(strings.Contains(err.Error(), `idempotency key "square-7" was used at`))
			is.True(strings.HasPrefix(err.Error(), "dispatch: "))

			// A batch is one request: one key names its list of calls.
			ids, err := d.DispatchKey(ctx, "batch-1", callers(ktSquare, 1, 2, 3)...)
			is.NoErr(err)
			is.Equal(len(ids), 3)
			same, err := d.DispatchKey(ctx, "batch-1", callers(ktSquare, 1, 2, 3)...)
			is.NoErr(err)
			is.Equal(same, ids)
			_, err = d.DispatchKey(ctx, "batch-1", callers(ktSquare, 1, 2)...)
			is.True(errors.Is(err, dispatch.ErrKeyConflict))

			// Without calls, nothing is sent, and nothing recorded.
			none, err := d.DispatchKey(ctx, "empty")
			is.NoErr(err)
			is.Equal(len(none), 0)
		})
	}
}

// callers returns a call of fn per input.
func callers[I, O any](fn *dispatch.Function[I, O], inputs ...I) []dispatch.Caller {
	var out []dispatch.Caller
	for _, c := range fn.Calls(inputs...) {
		out = append(out, c)
	}
	return out
}

func TestDispatchKeyInvalid(t *testing.T) {
	d, _ := startLocal(t, "")
	tests := []struct {
		name, key, want string
	}{
		{"empty", "", "dispatch: DispatchKey: the idempotency key is empty"},
		{"too long", strings.Repeat("k", 256), "is 256 bytes, at most 255"},
		{"a space", "order 42", "printable ASCII without spaces"},
		{"not ASCII", "commande-é", "printable ASCII without spaces"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			_, err := d.DispatchKey(context.Background(), tt.key, ktEcho.Call("x"))
			is.True(err != nil)
			is.True(strings.Contains(err.Error(), tt.want))
		})
	}
}

// Many goroutines dispatching with one key start one call.
func TestDispatchKeyConcurrent(t *testing.T) {
	is := is.New(t)
	startLocal(t, "")
	const n = 32
	ids := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { ids[i], errs[i] = ktEcho.DispatchKey(context.Background(), "once", "x") })
	}
	wg.Wait()
	for i := range n {
		is.NoErr(errs[i])
		is.Equal(ids[i], ids[0])
	}
}

// A program in local mode that dispatched with a key, and runs again on
// the same state directory (with its endpoint on another port), gets the
// same id and starts nothing.
func TestDispatchKeyAcrossRuns(t *testing.T) {
	is := is.New(t)
	dir := t.TempDir()
	d1, _ := startLocal(t, dir)
	ctx := context.Background()
	id, err := ktEcho.DispatchKey(ctx, "run-once", "first run")
	is.NoErr(err)
	_, err = ktEcho.Wait(ctx, id)
	is.NoErr(err)
	endpoint := d1.EndpointURL()
	is.NoErr(d1.Close())

	d2, _ := startLocal(t, dir)
	is.True(d2.EndpointURL() != endpoint) // another port, the same request
	again, err := ktEcho.DispatchKey(ctx, "run-once", "first run")
	is.NoErr(err)
	is.Equal(again, id)
}

// fakeDispatch is a DispatchService that knows nothing of keys, as the
// hosted platform and dispatch-py's mock server: it records the calls and
// answers ids, without the Idempotent-Replayed header.
type fakeDispatch struct {
	mu    sync.Mutex
	calls int
	keys  []string
}

func (f *fakeDispatch) Dispatch(ctx context.Context, req *connect.Request[sdkv1.DispatchRequest]) (*connect.Response[sdkv1.DispatchResponse], error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.keys = append(f.keys, req.Header().Get("Idempotency-Key"))
	res := &sdkv1.DispatchResponse{}
	for range req.Msg.GetCalls() {
		f.calls++
		res.DispatchIds = append(res.DispatchIds, "fake-"+strings.Repeat("x", f.calls))
	}
	return connect.NewResponse(res), nil
}

// With a server that ignores the key, DispatchKey fails rather than let a
// retry start the calls twice, and returns the ids it got.
func TestDispatchKeyUnsupported(t *testing.T) {
	tests := []struct {
		name     string
		protocol dispatch.Protocol
	}{
		{"connect", dispatch.ProtocolConnect},
		{"grpc, as dispatch-py's mock", dispatch.ProtocolGRPC},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			fake := &fakeDispatch{}
			path, h := sdkv1connect.NewDispatchServiceHandler(fake)
			mux := http.NewServeMux()
			mux.Handle(path, h)
			srv := httptest.NewUnstartedServer(mux)
			srv.Config.Protocols = new(http.Protocols)
			srv.Config.Protocols.SetHTTP1(true)
			srv.Config.Protocols.SetUnencryptedHTTP2(true)
			srv.Start()
			defer srv.Close()
			d, err := dispatch.New(dispatch.WithAPIURL(srv.URL), dispatch.WithAPIKey("k"),
				dispatch.WithEndpointURL("http://127.0.0.1:1"), dispatch.WithProtocol(tt.protocol),
				dispatch.WithZerolog(zerolog.Nop()))
			is.NoErr(err)
			defer d.Close()

			ids, err := d.DispatchKey(context.Background(), "order-42", ktEcho.Call("x"))
			is.True(errors.Is(err, dispatch.ErrKeysUnsupported))
			is.Equal(ids, []string{"fake-x"}) // started, once: the ids say which
			msg := err.Error()
			is.True(strings.Contains(msg, "dispatch: the Dispatch server at "+srv.URL+" does not support idempotency keys (the hosted protocol has no field for them)"))
			is.True(strings.Contains(msg, "fake-x"))
			is.Equal(fake.keys, []string{"order-42"}) // the key was sent
		})
	}
}
