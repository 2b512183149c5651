package server_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"buf.build/gen/go/stealthrocket/dispatch-proto/connectrpc/go/dispatch/sdk/v1/sdkv1connect"
	sdkv1 "buf.build/gen/go/stealthrocket/dispatch-proto/protocolbuffers/go/dispatch/sdk/v1"
	"connectrpc.com/connect"
	"github.com/matryer/is"
	"github.com/rs/zerolog"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/dispatchkit/dispatch/internal/signature"
	"github.com/dispatchkit/dispatch/internal/testsync"
	"github.com/dispatchkit/dispatch/server"
)

// fn is a test function: it answers one Run request.
type fn func(req *sdkv1.RunRequest) (*sdkv1.RunResponse, error)

// testEndpoint is a FunctionService that verifies every request's signature
// with the independent verifier and runs registered test functions.
type testEndpoint struct {
	srv      *httptest.Server
	verifier atomic.Pointer[signature.Verifier]

	mu      sync.Mutex
	fns     map[string]fn
	runs    map[string]int // per function
	reqs    []*sdkv1.RunRequest
	sigErrs []error
}

func newTestEndpoint(t testing.TB, prefix string) *testEndpoint {
	t.Helper()
	ep := &testEndpoint{fns: map[string]fn{}, runs: map[string]int{}}
	path, h := sdkv1connect.NewFunctionServiceHandler(ep)
	mux := http.NewServeMux()
	mux.Handle(prefix+path, http.StripPrefix(prefix, ep.verify(h)))
	ep.srv = httptest.NewServer(mux)
	t.Cleanup(func() {
		ep.srv.Close()
		ep.mu.Lock()
		defer ep.mu.Unlock()
		for _, err := range ep.sigErrs {
			t.Errorf("signature: %v", err)
		}
	})
	return ep
}

func (ep *testEndpoint) URL() string { return ep.srv.URL }

func (ep *testEndpoint) handle(name string, f fn) {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	ep.fns[name] = f
}

func (ep *testEndpoint) count(name string) int {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	return ep.runs[name]
}

func (ep *testEndpoint) requests(name string) []*sdkv1.RunRequest {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	var out []*sdkv1.RunRequest
	for _, r := range ep.reqs {
		if r.GetFunction() == name {
			out = append(out, r)
		}
	}
	return out
}

func (ep *testEndpoint) verify(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		if v := ep.verifier.Load(); v != nil {
			if err := v.Verify(r, body); err != nil {
				ep.mu.Lock()
				ep.sigErrs = append(ep.sigErrs, err)
				ep.mu.Unlock()
				http.Error(w, err.Error(), http.StatusUnauthorized)
				return
			}
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		next.ServeHTTP(w, r)
	})
}

func (ep *testEndpoint) Run(ctx context.Context, req *connect.Request[sdkv1.RunRequest]) (*connect.Response[sdkv1.RunResponse], error) {
	ep.mu.Lock()
	f := ep.fns[req.Msg.GetFunction()]
	ep.runs[req.Msg.GetFunction()]++
	ep.reqs = append(ep.reqs, req.Msg)
	ep.mu.Unlock()
	if f == nil {
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("function %q not registered", req.Msg.GetFunction()))
	}
	res, err := f(req.Msg)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(res), nil
}

// bundle is the state of one test: a server and its endpoint.
type bundle struct {
	srv    *server.Server
	ep     *testEndpoint
	client sdkv1connect.DispatchServiceClient
}

type option func(*server.Config)

// allow lets calls name the endpoints at urls, beside the server's
// default endpoint (the only one allowed otherwise).
func allow(urls ...string) option {
	return func(c *server.Config) { c.AllowEndpoints = append(c.AllowEndpoints, urls...) }
}

func setup(t testing.TB, opts ...option) *bundle {
	t.Helper()
	ep := newTestEndpoint(t, "")
	cfg := server.Config{
		Endpoint:   ep.URL(),
		Memory:     true,
		MinBackoff: time.Millisecond,
		MaxBackoff: 10 * time.Millisecond,
		Logger:     zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel),
	}
	for _, o := range opts {
		o(&cfg)
	}
	return startServer(t, ep, cfg)
}

// startServer makes a server for cfg, has ep verify the signatures of its
// requests and starts it; the server is closed when the test ends.
func startServer(t testing.TB, ep *testEndpoint, cfg server.Config) *bundle {
	t.Helper()
	is := is.New(t)
	srv, err := server.New(cfg)
	is.NoErr(err)
	pub, err := signature.ParsePublicKey(srv.VerificationKey())
	is.NoErr(err)
	ep.verifier.Store(signature.NewVerifier(pub))
	is.NoErr(srv.Start(context.Background()))
	t.Cleanup(func() { srv.Close() })
	return &bundle{srv: srv, ep: ep, client: newDispatchClient(srv)}
}

// newDispatchClient is a DispatchService client of srv.
func newDispatchClient(srv *server.Server) sdkv1connect.DispatchServiceClient {
	return sdkv1connect.NewDispatchServiceClient(http.DefaultClient, srv.URL())
}

// send sends a Dispatch request with the server's key.
func (b *bundle) send(calls ...*sdkv1.Call) ([]string, error) {
	req := connect.NewRequest(&sdkv1.DispatchRequest{Calls: calls})
	req.Header().Set("Authorization", "Bearer "+b.srv.APIKey())
	res, err := b.client.Dispatch(context.Background(), req)
	if err != nil {
		return nil, err
	}
	return res.Msg.GetDispatchIds(), nil
}

// dispatch sends calls and fails the test unless each gets an id.
func (b *bundle) dispatch(t testing.TB, calls ...*sdkv1.Call) []string {
	t.Helper()
	ids, err := b.send(calls...)
	if err != nil {
		t.Fatalf("Dispatch: %v", err)
	}
	if len(ids) != len(calls) {
		t.Fatalf("Dispatch returned %d ids for %d calls", len(ids), len(calls))
	}
	return ids
}

// waitFor waits until cond holds, polling with a deadline.
var waitFor = testsync.WaitFor

// recv receives from ch with a deadline.
func recv[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatal("timed out waiting for a value")
		panic("unreachable")
	}
}

// Helpers building messages.

func str(s string) *anypb.Any {
	a, err := anypb.New(wrapperspb.String(s))
	if err != nil {
		panic(err)
	}
	return a
}

func strOf(a *anypb.Any) string {
	var v wrapperspb.StringValue
	if err := a.UnmarshalTo(&v); err != nil {
		return "<" + a.GetTypeUrl() + ">"
	}
	return v.GetValue()
}

func call(function string, input string) *sdkv1.Call {
	return &sdkv1.Call{Function: function, Input: str(input)}
}

func child(corr uint64, function, input string) *sdkv1.Call {
	c := call(function, input)
	c.CorrelationId = corr
	return c
}

func output(s string) *sdkv1.RunResponse {
	return &sdkv1.RunResponse{
		Status:    sdkv1.Status_STATUS_OK,
		Directive: &sdkv1.RunResponse_Exit{Exit: &sdkv1.Exit{Result: &sdkv1.CallResult{Output: str(s)}}},
	}
}

func failure(s sdkv1.Status, msg string) *sdkv1.RunResponse {
	return &sdkv1.RunResponse{
		Status: s,
		Directive: &sdkv1.RunResponse_Exit{Exit: &sdkv1.Exit{Result: &sdkv1.CallResult{
			Error: &sdkv1.Error{Type: "test", Message: msg},
		}}},
	}
}

func poll(state string, minResults, maxResults int32, wait time.Duration, calls ...*sdkv1.Call) *sdkv1.RunResponse {
	return &sdkv1.RunResponse{
		Status: sdkv1.Status_STATUS_OK,
		Directive: &sdkv1.RunResponse_Poll{Poll: &sdkv1.Poll{
			State:      &sdkv1.Poll_CoroutineState{CoroutineState: []byte(state)},
			Calls:      calls,
			MinResults: minResults,
			MaxResults: maxResults,
			MaxWait:    durationpb.New(wait),
		}},
	}
}

func stateOf(req *sdkv1.RunRequest) string {
	return string(req.GetPollResult().GetCoroutineState())
}

// echo answers with its input.
func echo(req *sdkv1.RunRequest) (*sdkv1.RunResponse, error) {
	return output(strOf(req.GetInput())), nil
}

// gather returns a function that polls calls once (min, max results) and
// hands each resume to out; it exits after the resume number exitAfter,
// polling with no calls in between.
func gather(out chan<- *sdkv1.RunRequest, minResults, maxResults int32, wait time.Duration, exitAfter int, calls ...*sdkv1.Call) fn {
	return func(req *sdkv1.RunRequest) (*sdkv1.RunResponse, error) {
		if req.GetInput() != nil {
			return poll("0", minResults, maxResults, wait, cloneCalls(calls)...), nil
		}
		out <- req
		n := len(stateOf(req))
		if n >= exitAfter {
			return output("done"), nil
		}
		return poll(stateOf(req)+"0", 1, maxResults, wait), nil
	}
}

func cloneCalls(calls []*sdkv1.Call) []*sdkv1.Call {
	out := make([]*sdkv1.Call, len(calls))
	for i, c := range calls {
		out[i] = proto.Clone(c).(*sdkv1.Call)
	}
	return out
}

// h2cClient speaks HTTP/2 over cleartext, for gRPC.
func h2cClient() *http.Client {
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	return &http.Client{Transport: &http.Transport{
		Protocols:       &p,
		TLSClientConfig: &tls.Config{},
		DialContext:     (&net.Dialer{}).DialContext,
	}}
}

// writeProto answers 200 with m, as connect-go does for unary calls.
func writeProto(w http.ResponseWriter, m proto.Message) {
	data, _ := proto.Marshal(m)
	w.Header().Set("Content-Type", "application/proto")
	w.WriteHeader(200)
	w.Write(data)
}

// statusAnswer answers a RunResponse with status s and an error of type
// "test".
func statusAnswer(s sdkv1.Status) func(http.ResponseWriter) {
	return func(w http.ResponseWriter) { writeProto(w, failure(s, "failing with "+s.String())) }
}

// httpAnswer answers an HTTP error.
func httpAnswer(code int) func(http.ResponseWriter) {
	return func(w http.ResponseWriter) { http.Error(w, "failing", code) }
}

// garbage answers 200 with bytes that are not a RunResponse.
func garbage(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/proto")
	w.WriteHeader(200)
	io.WriteString(w, strings.Repeat("\xff", 10))
}

func newRawEndpoint(t *testing.T, h http.HandlerFunc) *httptest.Server {
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// flakyEndpoint fails its first requests with fail, then echoes the input.
type flakyEndpoint struct {
	srv  *httptest.Server
	runs atomic.Int32
}

func newFlakyEndpoint(t *testing.T, failures int, fail func(http.ResponseWriter)) *flakyEndpoint {
	f := &flakyEndpoint{}
	f.srv = newRawEndpoint(t, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if n := f.runs.Add(1); int(n) <= failures {
			fail(w)
			return
		}
		var req sdkv1.RunRequest
		if err := proto.Unmarshal(body, &req); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		writeProto(w, output(strOf(req.GetInput())))
	})
	return f
}
