package dispatch

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	sdkv1 "buf.build/gen/go/stealthrocket/dispatch-proto/protocolbuffers/go/dispatch/sdk/v1"
	"github.com/dispatchkit/dispatch/flow"
	"github.com/dispatchkit/dispatch/serde"
	"github.com/matryer/is"
	"google.golang.org/protobuf/types/known/anypb"
)

// A three-step flow: double n, double the result plus one, add what was
// captured. roottest.pipeline(3) = 2*(2*3+1) + 3 = 17.
var (
	rtPipeline = Flow("roottest.pipeline", func(ctx *flow.Ctx, n int) flow.Step[int] {
		return Await(rtDouble, n, rtPipelineDoubled.With(n))
	})
	rtPipelineDoubled = flow.ThenWith("roottest.pipeline.doubled", func(ctx *flow.Ctx, n, doubled int) flow.Step[int] {
		return Await(rtDouble, doubled+1, rtPipelineAdded.With(n))
	})
	rtPipelineAdded = flow.ThenWith("roottest.pipeline.added", func(ctx *flow.Ctx, n, v int) flow.Step[int] {
		return flow.Done(v + n)
	})
)

// roottest.careful awaits a call that fails and handles the error, which
// keeps the status and message of the child's failure.
var (
	rtCareful = Flow("roottest.careful", func(ctx *flow.Ctx, s string) flow.Step[string] {
		return Await(rtFlaky, s, rtCarefulHandled)
	})
	rtCarefulHandled = flow.Handle("roottest.careful.handled", func(ctx *flow.Ctx, v string, err error) flow.Step[string] {
		if err == nil {
			return flow.Done("no error: " + v)
		}
		var e *Error
		if !errors.As(err, &e) {
			return flow.Done("not an *Error: " + err.Error())
		}
		return flow.Done(StatusOf(err).String() + " " + e.Message)
	})
)

// TestFlowStepByStep plays Dispatch by hand: the first Run answers a Poll,
// each resume carries the result under the correlation id of the poll's
// call, and the last answer is the exit.
func TestFlowStepByStep(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	b := setupEndpoint(t)
	client := b.runClient()

	res := run(t, client, &sdkv1.RunRequest{
		Function: "roottest.pipeline", Directive: &sdkv1.RunRequest_Input{Input: mustAny(t, 3)},
		DispatchId: "root-1", RootDispatchId: "root-1",
	})
	is.Equal(res.GetStatus(), sdkv1.Status_STATUS_OK)
	for i, want := range []struct {
		input  int
		output int
	}{{3, 6}, {7, 14}} {
		poll := res.GetPoll()
		is.True(poll != nil)                                                    // suspended
		is.Equal(poll.GetTypedCoroutineState().GetTypeUrl(), flow.StateTypeURL) // typed state
		is.Equal(len(poll.GetCalls()), 1)                                       // one call
		is.Equal(poll.GetMinResults(), int32(1))
		is.True(poll.GetMaxResults() >= 1)
		is.True(poll.GetMaxWait().AsDuration() > 0)
		call := poll.GetCalls()[0]
		is.Equal(call.GetFunction(), "roottest.double")
		is.Equal(call.GetEndpoint(), "") // the calling function's own endpoint
		var in int
		is.NoErr(serde.Unmarshal(call.GetInput(), &in))
		is.Equal(in, want.input) // the call's input
		if i > 0 {
			is.True(call.GetCorrelationId() != 0)
		}

		// A result for another correlation id first: ignored, the flow
		// keeps waiting.
		stray := run(t, client, &sdkv1.RunRequest{
			Function: "roottest.pipeline", DispatchId: "root-1", RootDispatchId: "root-1",
			Directive: &sdkv1.RunRequest_PollResult{PollResult: &sdkv1.PollResult{
				State:   &sdkv1.PollResult_TypedCoroutineState{TypedCoroutineState: poll.GetTypedCoroutineState()},
				Results: []*sdkv1.CallResult{{CorrelationId: call.GetCorrelationId() + 1000, Output: mustAny(t, 0)}},
			}},
		})
		is.Equal(stray.GetStatus(), sdkv1.Status_STATUS_OK)
		is.True(stray.GetPoll() != nil)              // still waiting
		is.Equal(len(stray.GetPoll().GetCalls()), 0) // without making the call again

		res = run(t, client, &sdkv1.RunRequest{
			Function: "roottest.pipeline", DispatchId: "root-1", RootDispatchId: "root-1",
			Directive: &sdkv1.RunRequest_PollResult{PollResult: &sdkv1.PollResult{
				State:   &sdkv1.PollResult_TypedCoroutineState{TypedCoroutineState: stray.GetPoll().GetTypedCoroutineState()},
				Results: []*sdkv1.CallResult{{CorrelationId: call.GetCorrelationId(), DispatchId: "child", Output: mustAny(t, want.output)}},
			}},
		})
		is.Equal(res.GetStatus(), sdkv1.Status_STATUS_OK)
	}
	is.True(res.GetExit() != nil) // done
	is.Equal(output[int](t, res), 17)
	is.True(res.GetExit().GetTailCall() == nil)
}

func TestFlowsThroughHandler(t *testing.T) {
	t.Parallel()
	b := setupEndpoint(t)
	reversed := func(rs []*sdkv1.CallResult) [][]*sdkv1.CallResult {
		out := make([][]*sdkv1.CallResult, len(rs))
		for i, r := range rs {
			out[len(rs)-1-i] = []*sdkv1.CallResult{r}
		}
		return out
	}
	oneAtATime := func(rs []*sdkv1.CallResult) [][]*sdkv1.CallResult {
		out := make([][]*sdkv1.CallResult, len(rs))
		for i, r := range rs {
			out[i] = []*sdkv1.CallResult{r}
		}
		return out
	}
	tests := []struct {
		name     string
		function string
		input    any
		deliver  func([]*sdkv1.CallResult) [][]*sdkv1.CallResult
		fail     func(*sdkv1.Call) *sdkv1.Error
		calls    []int // calls per poll
		check    func(is *is.I, t *testing.T, res *sdkv1.RunResponse)
	}{
		{
			name: "pipeline", function: rtPipeline.Name(), input: 3, calls: []int{1, 1},
			check: func(is *is.I, t *testing.T, res *sdkv1.RunResponse) { is.Equal(output[int](t, res), 17) },
		},
		{
			name: "gather, all at once", function: rtSum.Name(), input: []int{1, 2, 3, 4}, calls: []int{4},
			check: func(is *is.I, t *testing.T, res *sdkv1.RunResponse) {
				is.Equal(output[[]int](t, res), []int{2, 4, 6, 8, 20})
			},
		},
		{
			name: "gather, reversed", function: rtSum.Name(), input: []int{1, 2, 3}, calls: []int{3}, deliver: reversed,
			check: func(is *is.I, t *testing.T, res *sdkv1.RunResponse) {
				is.Equal(output[[]int](t, res), []int{2, 4, 6, 12})
			},
		},
		{
			name: "gather, one at a time", function: rtSum.Name(), input: []int{5, 6}, calls: []int{2}, deliver: oneAtATime,
			check: func(is *is.I, t *testing.T, res *sdkv1.RunResponse) {
				is.Equal(output[[]int](t, res), []int{10, 12, 22})
			},
		},
		{
			name: "gather of nothing", function: rtSum.Name(), input: []int{}, calls: nil,
			check: func(is *is.I, t *testing.T, res *sdkv1.RunResponse) { is.Equal(output[[]int](t, res), []int{0}) },
		},
		{
			name: "a child's error reaches a handler with its status", function: rtCareful.Name(), input: "c", calls: []int{1},
			check: func(is *is.I, t *testing.T, res *sdkv1.RunResponse) {
				is.Equal(output[string](t, res), "TEMPORARY_ERROR roottest: flaky c")
			},
		},
		{
			name: "an unhandled child error fails the flow", function: rtPipeline.Name(), input: 1, calls: []int{1},
			fail: func(c *sdkv1.Call) *sdkv1.Error {
				return &sdkv1.Error{Type: "roottest.Refused", Message: "roottest: refused"}
			},
			check: func(is *is.I, t *testing.T, res *sdkv1.RunResponse) {
				// A wire error without a status is permanent; its type and
				// message are kept.
				is.Equal(res.GetStatus(), sdkv1.Status_STATUS_PERMANENT_ERROR)
				e := res.GetExit().GetResult().GetError()
				is.Equal(e.GetType(), "roottest.Refused")
				is.Equal(e.GetMessage(), "roottest: refused")
			},
		},
		{
			name: "a failed gather", function: rtSum.Name(), input: []int{1, 2, 3}, calls: []int{3},
			fail: func(c *sdkv1.Call) *sdkv1.Error {
				var n int
				if err := serde.Unmarshal(c.GetInput(), &n); err != nil || n != 2 {
					return nil
				}
				return &sdkv1.Error{Type: "roottest.Refused", Message: "roottest: two"}
			},
			check: func(is *is.I, t *testing.T, res *sdkv1.RunResponse) {
				is.True(res.GetStatus() != sdkv1.Status_STATUS_OK)
				is.True(strings.Contains(res.GetExit().GetResult().GetError().GetMessage(), "roottest: two"))
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			fd := &flowDriver{client: b.runClient(), deliver: tt.deliver, fail: tt.fail}
			res, polls := fd.drive(t, tt.function, tt.input)
			is.True(res.GetExit() != nil) // done
			calls := make([]int, 0, len(polls))
			for _, p := range polls {
				calls = append(calls, len(p.GetCalls()))
			}
			if len(tt.calls) == 0 {
				is.Equal(len(calls), 0)
			} else {
				is.Equal(calls, tt.calls) // calls made at each poll
			}
			tt.check(is, t, res)
		})
	}
}

// TestFlowIncompatibleState resumes flows with states they cannot use: the
// endpoint answers 200 with INCOMPATIBLE_STATE, so that Dispatch restarts
// the call from its input.
func TestFlowIncompatibleState(t *testing.T) {
	t.Parallel()
	b := setupEndpoint(t)
	// A real state, to damage.
	first := run(t, b.runClient(), runReq(t, "roottest.pipeline", 3))
	state := first.GetPoll().GetTypedCoroutineState().GetValue()
	if len(state) == 0 {
		t.Fatal("the first run answered no state")
	}
	tests := []struct {
		name string
		pr   *sdkv1.PollResult
	}{
		{"garbage typed state", &sdkv1.PollResult{State: &sdkv1.PollResult_TypedCoroutineState{TypedCoroutineState: &anypb.Any{TypeUrl: flow.StateTypeURL, Value: []byte("garbage")}}}},
		{"garbage untyped state", &sdkv1.PollResult{State: &sdkv1.PollResult_CoroutineState{CoroutineState: []byte{0xff, 0x00, 0x13, 0x37}}}},
		{"state of another type", &sdkv1.PollResult{State: &sdkv1.PollResult_TypedCoroutineState{TypedCoroutineState: mustAny(t, "not a state")}}},
		{"no state", &sdkv1.PollResult{}},
		{"empty state", &sdkv1.PollResult{State: &sdkv1.PollResult_CoroutineState{CoroutineState: []byte{}}}},
		{"truncated state", &sdkv1.PollResult{State: &sdkv1.PollResult_TypedCoroutineState{TypedCoroutineState: &anypb.Any{TypeUrl: flow.StateTypeURL, Value: state[:len(state)/2]}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			status, res := b.post(t, &sdkv1.RunRequest{Function: "roottest.pipeline", Directive: &sdkv1.RunRequest_PollResult{PollResult: tt.pr}})
			is.Equal(status, http.StatusOK) // not an HTTP error
			is.Equal(res.GetStatus(), sdkv1.Status_STATUS_INCOMPATIBLE_STATE)
			e := res.GetExit().GetResult().GetError()
			is.True(e.GetMessage() != "")
		})
	}
	// The real state still resumes: the damage was in the copies.
	is := is.New(t)
	status, res := b.post(t, &sdkv1.RunRequest{Function: "roottest.pipeline", Directive: &sdkv1.RunRequest_PollResult{PollResult: &sdkv1.PollResult{
		State:   &sdkv1.PollResult_CoroutineState{CoroutineState: state}, // the untyped form is accepted too
		Results: []*sdkv1.CallResult{{CorrelationId: first.GetPoll().GetCalls()[0].GetCorrelationId(), Output: mustAny(t, 6)}},
	}}})
	is.Equal(status, http.StatusOK)
	is.Equal(res.GetStatus(), sdkv1.Status_STATUS_OK)
	is.Equal(len(res.GetPoll().GetCalls()), 1) // on to the second step
}

// TestFlowPollError resumes a flow whose calls Dispatch could not make:
// the wait fails as a whole, and the flow fails with the poll's error.
func TestFlowPollError(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	b := setupEndpoint(t)
	client := b.runClient()
	first := run(t, client, runReq(t, "roottest.careful", "p"))
	res := run(t, client, &sdkv1.RunRequest{Function: "roottest.careful", Directive: &sdkv1.RunRequest_PollResult{PollResult: &sdkv1.PollResult{
		State: &sdkv1.PollResult_TypedCoroutineState{TypedCoroutineState: first.GetPoll().GetTypedCoroutineState()},
		Error: &sdkv1.Error{Type: "roottest.Quota", Message: "roottest: too many calls"},
	}}})
	out := output[string](t, res) // roottest.careful handles errors
	is.True(strings.Contains(out, "roottest: too many calls"))
}
