package dispatch

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"buf.build/gen/go/stealthrocket/dispatch-proto/connectrpc/go/dispatch/sdk/v1/sdkv1connect"
	sdkv1 "buf.build/gen/go/stealthrocket/dispatch-proto/protocolbuffers/go/dispatch/sdk/v1"
	"connectrpc.com/connect"
	"github.com/dispatchkit/dispatch/flow"
	"github.com/dispatchkit/dispatch/internal/registry"
	"github.com/dispatchkit/dispatch/serde"
	"github.com/matryer/is"
	"google.golang.org/protobuf/proto"
)

// uniqueName returns a function name not yet registered in this process,
// so that tests registering functions can run with -count=N.
func uniqueName(prefix string) string {
	return fmt.Sprintf("%s%d", prefix, nameCounter.Add(1))
}

var nameCounter atomic.Int64

func TestRegisterNames(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		fn   string
		want string // in the error; "" for none
	}{
		{name: "empty", fn: "", want: "invalid function name"},
		{name: "starts with a digit", fn: "1fn", want: "invalid function name"},
		{name: "dash", fn: "roottest.a-b", want: "invalid function name"},
		{name: "space", fn: "roottest.a b", want: "invalid function name"},
		{name: "slash", fn: "roottest/a", want: "invalid function name"},
		{name: "taken", fn: "roottest.echo", want: "registered twice"},
		{name: "taken by a flow", fn: "roottest.pipeline", want: "registered twice"},
		{name: "dots, underscores, angle brackets", fn: uniqueName("_roottest.Box<int>.v")},
		{name: "256 bytes", fn: nameOfLength(256)},
		{name: "257 bytes", fn: nameOfLength(257), want: "is 257 bytes, at most 256"},
		{name: "long and invalid", fn: nameOfLength(1000) + "-", want: "is 1001 bytes, at most 256"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			f, err := FuncSafely(tt.fn, func(ctx context.Context, s string) (string, error) { return s, nil })
			g, err2 := FlowSafely(tt.fn, func(ctx *flow.Ctx, s string) flow.Step[string] { return flow.Done(s) })
			if tt.want == "" {
				is.NoErr(err)
				is.Equal(f.Name(), tt.fn)
				is.True(err2 != nil) // a flow cannot take a function's name
				is.True(g == nil)
				is.True(slices.Contains(Functions(), tt.fn))
				return
			}
			is.True(err != nil)
			is.True(f == nil)
			is.True(strings.HasPrefix(err.Error(), "dispatch: "))
			is.True(strings.Contains(err.Error(), tt.want))
			is.True(strings.Contains(err.Error(), fmt.Sprintf("%q", registry.Short(tt.fn)))) // names the function
			is.True(err2 != nil)
			is.Equal(err2.Error(), err.Error())
		})
	}
}

// nameOfLength returns a function name not registered yet, of n bytes.
func nameOfLength(n int) string {
	s := uniqueName("roottest.len") + "."
	return s + strings.Repeat("x", n-len(s))
}

func TestFuncPanicsOnError(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		register func()
	}{
		{"Func", func() { Func("roottest.echo", func(ctx context.Context, s string) (string, error) { return s, nil }) }},
		{"Flow", func() {
			Flow("roottest.bad name", func(ctx *flow.Ctx, s string) flow.Step[string] { return flow.Done(s) })
		}},
		{"Func, a name too long", func() {
			Func(nameOfLength(257), func(ctx context.Context, s string) (string, error) { return s, nil })
		}},
		{"Flow, a name too long", func() {
			Flow(nameOfLength(300), func(ctx *flow.Ctx, s string) flow.Step[string] { return flow.Done(s) })
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			defer func() {
				err, ok := recover().(error)
				is.True(ok) // panics with an error
				is.True(strings.HasPrefix(err.Error(), "dispatch: "))
			}()
			tt.register()
		})
	}
}

func TestFunctionsSorted(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	names := Functions()
	is.True(slices.IsSorted(names))
	for _, fn := range []string{"roottest.echo", "roottest.double", "roottest.pipeline", "roottest.sum"} {
		is.True(slices.Contains(names, fn)) // registered at init
	}
}

// runClient is a FunctionService client of b's HTTP/1.1 server, signing
// like Dispatch.
func (b *endpointBundle) runClient() sdkv1connect.FunctionServiceClient {
	return sdkv1connect.NewFunctionServiceClient(&http.Client{Transport: b.transport(b.h1, endpointCase{})}, b.h1.URL)
}

// run sends req to the endpoint and returns its answer.
func run(t *testing.T, client sdkv1connect.FunctionServiceClient, req *sdkv1.RunRequest) *sdkv1.RunResponse {
	t.Helper()
	res, err := client.Run(t.Context(), connect.NewRequest(req))
	if err != nil {
		t.Fatalf("Run(%s): %v", req.GetFunction(), err)
	}
	return res.Msg
}

func TestFuncInputErrors(t *testing.T) {
	t.Parallel()
	b := setupEndpoint(t)
	client := b.runClient()
	tests := []struct {
		name     string
		function string
		input    any
		want     []string
	}{
		{name: "string into an int", function: "roottest.double", input: "x", want: []string{"roottest.double", "StringValue", "int"}},
		{name: "float into an int", function: "roottest.double", input: 1.5, want: []string{"roottest.double", "int"}},
		{name: "string into a flow's int", function: "roottest.pipeline", input: "x", want: []string{"roottest.pipeline"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			res := run(t, client, runReq(t, tt.function, tt.input))
			is.Equal(res.GetStatus(), sdkv1.Status_STATUS_INVALID_ARGUMENT) // a 200 with a non-OK status
			msg := res.GetExit().GetResult().GetError().GetMessage()
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("message %q does not mention %q", msg, w)
				}
			}
		})
	}
}

// flowDriver plays Dispatch's part for a flow served by an endpoint: it
// runs the function, makes the calls of each poll with the registered Go
// functions (or fails them), and resumes the flow with their results in the
// order chosen, until the flow exits.
type flowDriver struct {
	client sdkv1connect.FunctionServiceClient
	// deliver orders the results of a poll; each inner slice is one
	// resume. The default delivers them all at once, in call order.
	deliver func(results []*sdkv1.CallResult) [][]*sdkv1.CallResult
	// fail, if it returns an error for a call, fails the call with it.
	fail func(c *sdkv1.Call) *sdkv1.Error
}

// drive runs function with input and returns the exit response and the
// polls seen.
func (fd *flowDriver) drive(t *testing.T, function string, input any) (*sdkv1.RunResponse, []*sdkv1.Poll) {
	t.Helper()
	var polls []*sdkv1.Poll
	res := run(t, fd.client, runReq(t, function, input))
	for i := 0; res.GetPoll() != nil; i++ {
		if i > 100 {
			t.Fatalf("%s: still polling after %d resumes", function, i)
		}
		poll := res.GetPoll()
		polls = append(polls, poll)
		if poll.GetTypedCoroutineState().GetTypeUrl() != flow.StateTypeURL {
			t.Fatalf("%s: poll state has type %q, want %q", function, poll.GetTypedCoroutineState().GetTypeUrl(), flow.StateTypeURL)
		}
		var results []*sdkv1.CallResult
		for j, c := range poll.GetCalls() {
			r := &sdkv1.CallResult{CorrelationId: c.GetCorrelationId(), DispatchId: fmt.Sprintf("child-%d-%d", i, j)}
			if e := fd.failure(c); e != nil {
				r.Error = e
			} else {
				inner := run(t, fd.client, &sdkv1.RunRequest{Function: c.GetFunction(), Directive: &sdkv1.RunRequest_Input{Input: c.GetInput()}})
				r.Output, r.Error = inner.GetExit().GetResult().GetOutput(), inner.GetExit().GetResult().GetError()
			}
			results = append(results, r)
		}
		batches := [][]*sdkv1.CallResult{results}
		if fd.deliver != nil {
			batches = fd.deliver(results)
		}
		state := poll.GetTypedCoroutineState()
		for _, batch := range batches {
			res = run(t, fd.client, &sdkv1.RunRequest{
				Function:  function,
				Directive: &sdkv1.RunRequest_PollResult{PollResult: &sdkv1.PollResult{State: &sdkv1.PollResult_TypedCoroutineState{TypedCoroutineState: state}, Results: batch}},
			})
			if p := res.GetPoll(); p != nil && len(p.GetCalls()) == 0 {
				state = p.GetTypedCoroutineState() // still waiting for this poll's results
				continue
			}
			break
		}
	}
	return res, polls
}

func (fd *flowDriver) failure(c *sdkv1.Call) *sdkv1.Error {
	if fd.fail == nil {
		return nil
	}
	return fd.fail(c)
}

// output decodes the output of an exit.
func output[T any](t *testing.T, res *sdkv1.RunResponse) T {
	t.Helper()
	var v T
	if res.GetStatus() != sdkv1.Status_STATUS_OK {
		t.Fatalf("status %s: %v", res.GetStatus(), res.GetExit().GetResult().GetError())
	}
	if err := serde.Unmarshal(res.GetExit().GetResult().GetOutput(), &v); err != nil {
		t.Fatalf("output: %v", err)
	}
	return v
}

// post sends req to the endpoint as a raw signed Connect post and returns
// the HTTP status and the decoded answer.
func (b *endpointBundle) post(t *testing.T, req *sdkv1.RunRequest) (int, *sdkv1.RunResponse) {
	t.Helper()
	body, err := proto.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	r, err := http.NewRequestWithContext(t.Context(), http.MethodPost, b.h1.URL+runPath, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	r.Header.Set("Content-Type", "application/proto")
	if err := b.signer.Sign(r, body); err != nil {
		t.Fatal(err)
	}
	res, err := b.h1.Client().Do(r)
	if err != nil {
		t.Fatal(err)
	}
	o := readOutcome(t, res)
	if o.status != http.StatusOK {
		return o.status, nil
	}
	var msg sdkv1.RunResponse
	if err := proto.Unmarshal(o.body, &msg); err != nil {
		t.Fatalf("answer: %v", err)
	}
	return o.status, &msg
}
