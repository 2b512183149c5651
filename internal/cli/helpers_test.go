package cli_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sync"
	"testing"
	"time"

	"buf.build/gen/go/stealthrocket/dispatch-proto/connectrpc/go/dispatch/sdk/v1/sdkv1connect"
	sdkv1 "buf.build/gen/go/stealthrocket/dispatch-proto/protocolbuffers/go/dispatch/sdk/v1"
	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/dispatchkit/dispatch/internal/signature"
	"github.com/dispatchkit/dispatch/internal/testsync"
	"github.com/dispatchkit/dispatch/server"
)

// syncBuffer collects output written from other goroutines.
type syncBuffer = testsync.Buffer

var bannerRE = regexp.MustCompile(`(?s)^Spawned a local Dispatch server on (127\.0\.0\.1:(\d+))\n.*DISPATCH_VERIFICATION_KEY="([^"]+)"\n\n$`)

// waitBanner waits until out holds the whole banner and returns the
// server's address and verification key.
func waitBanner(t *testing.T, out interface{ String() string }) (addr, key string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if m := bannerRE.FindStringSubmatch(out.String()); m != nil {
			return m[1], m[3]
		}
		if time.Now().After(deadline) {
			t.Fatalf("no banner; stdout so far:\n%s", out.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// workflowEndpoint runs "wf" workflows of `steps` sequential "step" calls,
// verifying every request's signature, and reports each finished workflow.
type workflowEndpoint struct {
	srv      *httptest.Server
	verifier *signature.Verifier
	steps    int
	stepTime time.Duration

	mu       sync.Mutex
	done     map[string]bool
	stepRuns int
	sigErrs  int
}

func newWorkflowEndpoint(t *testing.T, steps int, stepTime time.Duration) *workflowEndpoint {
	w := &workflowEndpoint{steps: steps, stepTime: stepTime, done: map[string]bool{}}
	path, h := sdkv1connect.NewFunctionServiceHandler(w)
	mux := http.NewServeMux()
	mux.Handle(path, http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.mu.Lock()
		v := w.verifier
		w.mu.Unlock()
		if v != nil {
			if err := v.Verify(r, body); err != nil {
				w.mu.Lock()
				w.sigErrs++
				w.mu.Unlock()
				http.Error(rw, err.Error(), http.StatusUnauthorized)
				return
			}
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		h.ServeHTTP(rw, r)
	}))
	w.srv = httptest.NewServer(mux)
	t.Cleanup(w.srv.Close)
	return w
}

func (w *workflowEndpoint) setKey(t *testing.T, key string) {
	pub, err := signature.ParsePublicKey(key)
	if err != nil {
		t.Fatal(err)
	}
	w.mu.Lock()
	w.verifier = signature.NewVerifier(pub)
	w.mu.Unlock()
}

func (w *workflowEndpoint) finished() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.done)
}

func (w *workflowEndpoint) stepCount() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stepRuns
}

func str(s string) *anypb.Any {
	a, _ := anypb.New(wrapperspb.String(s))
	return a
}

func (w *workflowEndpoint) Run(ctx context.Context, req *connect.Request[sdkv1.RunRequest]) (*connect.Response[sdkv1.RunResponse], error) {
	m := req.Msg
	switch m.GetFunction() {
	case "step":
		time.Sleep(w.stepTime) // the work of a step
		w.mu.Lock()
		w.stepRuns++
		w.mu.Unlock()
		return connect.NewResponse(&sdkv1.RunResponse{
			Status:    sdkv1.Status_STATUS_OK,
			Directive: &sdkv1.RunResponse_Exit{Exit: &sdkv1.Exit{Result: &sdkv1.CallResult{Output: str("ok")}}},
		}), nil
	case "wf":
		n := 0
		if pr := m.GetPollResult(); pr != nil {
			n = len(pr.GetCoroutineState())
			if len(pr.GetResults()) > 0 {
				n++
			}
		}
		if n >= w.steps {
			w.mu.Lock()
			w.done[m.GetDispatchId()] = true
			w.mu.Unlock()
			return connect.NewResponse(&sdkv1.RunResponse{
				Status:    sdkv1.Status_STATUS_OK,
				Directive: &sdkv1.RunResponse_Exit{Exit: &sdkv1.Exit{Result: &sdkv1.CallResult{Output: str("done")}}},
			}), nil
		}
		return connect.NewResponse(&sdkv1.RunResponse{
			Status: sdkv1.Status_STATUS_OK,
			Directive: &sdkv1.RunResponse_Poll{Poll: &sdkv1.Poll{
				State:      &sdkv1.Poll_CoroutineState{CoroutineState: bytes.Repeat([]byte{'s'}, n)},
				Calls:      []*sdkv1.Call{{CorrelationId: uint64(n), Function: "step", Input: str("x")}},
				MinResults: 1, MaxResults: 1, MaxWait: durationpb.New(time.Minute),
			}},
		}), nil
	}
	return nil, connect.NewError(connect.CodeNotFound, nil)
}

// dispatchWorkflows starts n "wf" workflows on the server at addr.
func dispatchWorkflows(t *testing.T, addr, key string, n int) []string {
	t.Helper()
	var calls []*sdkv1.Call
	for range n {
		calls = append(calls, &sdkv1.Call{Function: "wf", Input: str("go")})
	}
	return dispatchCalls(t, addr, key, calls)
}

// dispatchCalls dispatches calls in one request to the server at addr,
// with the API key key.
func dispatchCalls(t *testing.T, addr, key string, calls []*sdkv1.Call) []string {
	t.Helper()
	client := sdkv1connect.NewDispatchServiceClient(http.DefaultClient, "http://"+addr)
	req := connect.NewRequest(&sdkv1.DispatchRequest{Calls: calls})
	req.Header().Set("Authorization", "Bearer "+key)
	res, err := client.Dispatch(context.Background(), req)
	if err != nil {
		t.Fatalf("Dispatch: %v", err)
	}
	if len(res.Msg.GetDispatchIds()) != len(calls) {
		t.Fatalf("Dispatch returned %d ids for %d calls", len(res.Msg.GetDispatchIds()), len(calls))
	}
	return res.Msg.GetDispatchIds()
}

// fetchResult waits for the stored outcome of call id on the server at
// addr. The endpoint finishing a call comes before the server stores its
// outcome, so a test that reads the store waits for this.
func fetchResult(t *testing.T, addr, id string) (*server.Outcome, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return server.FetchResult(ctx, nil, "http://"+addr, "test", id, time.Second)
}

// waitFor waits until cond holds, polling with a deadline.
var waitFor = testsync.WaitFor

// dispatchErr dispatches call to the server at addr with the API key key
// and returns the ids or the error of the request.
func dispatchErr(addr, key string, call *sdkv1.Call) ([]string, error) {
	client := sdkv1connect.NewDispatchServiceClient(http.DefaultClient, "http://"+addr)
	req := connect.NewRequest(&sdkv1.DispatchRequest{Calls: []*sdkv1.Call{call}})
	req.Header().Set("Authorization", "Bearer "+key)
	res, err := client.Dispatch(context.Background(), req)
	if err != nil {
		return nil, err
	}
	return res.Msg.GetDispatchIds(), nil
}
