package server_test

import (
	"context"
	"sync"
	"testing"
	"time"

	sdkv1 "buf.build/gen/go/stealthrocket/dispatch-proto/protocolbuffers/go/dispatch/sdk/v1"
	"github.com/matryer/is"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/dispatchkit/dispatch/internal/store"
	"github.com/dispatchkit/dispatch/server"
)

// pyState is a typed_coroutine_state as dispatch-py sends it: an Any of a
// type the server does not know, which it must hand back unchanged.
func pyState() *anypb.Any {
	return &anypb.Any{TypeUrl: "type.googleapis.com/dispatch.sdk.python.v1.Coroutine", Value: []byte("\x0a\x05frame\x12\x03\x00\xff\x01")}
}

// pyPoll is a Poll as dispatch-py makes it: no max_wait, min_results 1,
// max_results max(1, min(outstanding, limit)), a typed state.
func pyPoll(outstanding, limit int, calls ...*sdkv1.Call) *sdkv1.RunResponse {
	return &sdkv1.RunResponse{
		Status: sdkv1.Status_STATUS_OK,
		Directive: &sdkv1.RunResponse_Poll{Poll: &sdkv1.Poll{
			State:      &sdkv1.Poll_TypedCoroutineState{TypedCoroutineState: pyState()},
			Calls:      calls,
			MinResults: 1,
			MaxResults: int32(max(1, min(outstanding, limit))),
		}},
	}
}

// TestDispatchPyPolls runs a scripted endpoint that behaves like
// dispatch-py: it polls with all its calls and no max_wait, then polls
// again with no calls (the results of the earlier children stay in its
// inbox across polls) until every result arrived, checking that its typed
// state comes back unchanged each time.
func TestDispatchPyPolls(t *testing.T) {
	tests := []struct {
		name  string
		calls int
		limit int // max_results is max(1, min(outstanding, limit))
	}{
		{"gather of 20, up to 10 a resume", 20, 10},
		{"one result a resume", 5, 1},
		{"a single call", 1, 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			b := setup(t)
			b.ep.handle("echo", echo)
			var mu sync.Mutex
			got := map[uint64]string{}
			var resumes []int // results per resume
			var problems []string
			b.ep.handle("coroutine", func(req *sdkv1.RunRequest) (*sdkv1.RunResponse, error) {
				if req.GetInput() != nil {
					var calls []*sdkv1.Call
					for i := range tt.calls {
						calls = append(calls, child(uint64(i+1), "echo", string(rune('a'+i))))
					}
					return pyPoll(tt.calls, tt.limit, calls...), nil
				}
				pr := req.GetPollResult()
				mu.Lock()
				defer mu.Unlock()
				if pr.GetError() != nil {
					problems = append(problems, "poll error: "+pr.GetError().GetMessage())
					return output("failed"), nil
				}
				if !proto.Equal(pr.GetTypedCoroutineState(), pyState()) {
					problems = append(problems, "state changed")
				}
				resumes = append(resumes, len(pr.GetResults()))
				for _, r := range pr.GetResults() {
					got[r.GetCorrelationId()] = strOf(r.GetOutput())
				}
				if len(got) == tt.calls {
					return output("done"), nil
				}
				return pyPoll(tt.calls-len(got), tt.limit), nil
			})
			id := b.dispatch(t, call("coroutine", ""))[0]
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			o, err := b.srv.Result(ctx, id)
			is.NoErr(err)
			mu.Lock()
			defer mu.Unlock()
			is.Equal(problems, []string(nil))
			is.Equal(o.Status, sdkv1.Status_STATUS_OK)
			is.Equal(strOf(o.Result.GetOutput()), "done")
			is.Equal(len(got), tt.calls) // every result, once
			for i := range tt.calls {
				is.Equal(got[uint64(i+1)], string(rune('a'+i)))
			}
			for _, n := range resumes {
				is.True(n >= 1)        // min_results 1: never resumed empty
				is.True(n <= tt.limit) // at most max_results
			}
		})
	}
}

// TestPollDefaults checks the default min_results of a Poll that sets no
// limits (1: the caller resumes with the first result), and that the
// results of earlier children stay in the inbox for a later Poll without
// calls.
func TestPollDefaults(t *testing.T) {
	is := is.New(t)
	b := setup(t)
	release := make(chan struct{})
	b.ep.handle("echo", echo)
	b.ep.handle("slow", func(req *sdkv1.RunRequest) (*sdkv1.RunResponse, error) {
		<-release
		return output("slow"), nil
	})
	out := make(chan *sdkv1.PollResult, 10)
	b.ep.handle("parent", func(req *sdkv1.RunRequest) (*sdkv1.RunResponse, error) {
		if req.GetInput() != nil {
			return pollNoLimits(child(1, "slow", ""), child(2, "echo", "quick")), nil
		}
		out <- req.GetPollResult()
		if string(req.GetPollResult().GetCoroutineState()) == "s" {
			return pollNoLimits(), nil // and wait for the rest
		}
		return output("done"), nil
	})
	b.dispatch(t, call("parent", ""))
	first := recv(t, out)
	is.True(first.GetError() == nil)
	is.Equal(len(first.GetResults()), 1) // resumed by the first result, the slow child still running
	is.Equal(first.GetResults()[0].GetCorrelationId(), uint64(2))
	close(release)
	second := recv(t, out)
	is.True(second.GetError() == nil)
	is.Equal(len(second.GetResults()), 1)
	is.Equal(second.GetResults()[0].GetCorrelationId(), uint64(1))
	waitFor(t, "done", func() bool { return b.srv.Live() == 0 })
}

// pollNoLimits is a Poll with no max_wait, min_results nor max_results;
// its state is "s" with calls, "ss" without.
func pollNoLimits(calls ...*sdkv1.Call) *sdkv1.RunResponse {
	state := "s"
	if len(calls) == 0 {
		state = "ss"
	}
	return &sdkv1.RunResponse{Directive: &sdkv1.RunResponse_Poll{Poll: &sdkv1.Poll{
		State: &sdkv1.Poll_CoroutineState{CoroutineState: []byte(state)},
		Calls: calls,
	}}}
}

// TestPollMaxResultsDefault checks that a resume with no max_results
// carries every ready result: the parent waits for one slow child, and
// by then the 999 others are in its inbox.
func TestPollMaxResultsDefault(t *testing.T) {
	is := is.New(t)
	b := setup(t)
	b.ep.handle("echo", echo)
	out := make(chan *sdkv1.RunRequest, 10)
	b.ep.handle("parent", func(req *sdkv1.RunRequest) (*sdkv1.RunResponse, error) {
		if req.GetInput() != nil {
			var calls []*sdkv1.Call
			for i := range 1000 {
				calls = append(calls, child(uint64(i), "echo", "x"))
			}
			p := pollNoLimits(calls...)
			p.GetPoll().MinResults = 1000
			return p, nil
		}
		out <- req
		return output("done"), nil
	})
	b.dispatch(t, call("parent", ""))
	r := recv(t, out).GetPollResult()
	is.True(r.GetError() == nil)
	is.Equal(len(r.GetResults()), 1000) // all of them, in one resume
	waitFor(t, "done", func() bool { return b.srv.Live() == 0 })
}

// TestPollNoMaxWaitNoCalls checks that a Poll with no calls and no
// max_wait waits until the call expires (nothing else can resume it):
// the call fails with TIMEOUT and its function is not run again.
func TestPollNoMaxWaitNoCalls(t *testing.T) {
	is := is.New(t)
	b := setup(t)
	b.ep.handle("waiter", func(req *sdkv1.RunRequest) (*sdkv1.RunResponse, error) {
		if req.GetInput() != nil {
			return pollNoLimits(), nil
		}
		return output("resumed"), nil
	})
	c := call("waiter", "")
	c.Expiration = durationpb.New(300 * time.Millisecond)
	id := b.dispatch(t, c)[0]
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	o, err := b.srv.Result(ctx, id)
	is.NoErr(err)
	is.Equal(o.Status, sdkv1.Status_STATUS_TIMEOUT)
	is.Equal(b.ep.count("waiter"), 1) // never resumed
}

// TestPollNoMaxWaitSurvivesRestart checks that a Poll without max_wait
// keeps its meaning across a restart: the recovered caller waits for its
// child's result, not for a deadline read back from the store.
func TestPollNoMaxWaitSurvivesRestart(t *testing.T) {
	is := is.New(t)
	dir := t.TempDir()
	ep := newTestEndpoint(t, "")
	start := func() *bundle {
		return startServer(t, ep, server.Config{
			Endpoint:   ep.URL(),
			StateDir:   dir,
			MinBackoff: time.Millisecond,
			MaxBackoff: 10 * time.Millisecond,
		})
	}
	blocked := make(chan struct{}, 10)
	release := make(chan struct{})
	var releaseOnce sync.Once
	defer releaseOnce.Do(func() { close(release) })
	ep.handle("slow", func(req *sdkv1.RunRequest) (*sdkv1.RunResponse, error) {
		blocked <- struct{}{}
		<-release
		return output("slow"), nil
	})
	out := make(chan *sdkv1.RunRequest, 10)
	ep.handle("parent", func(req *sdkv1.RunRequest) (*sdkv1.RunResponse, error) {
		if req.GetInput() != nil {
			return pyPoll(1, 10, child(1, "slow", "")), nil
		}
		out <- req
		return output("done"), nil
	})
	b1 := start()
	id := b1.dispatch(t, call("parent", ""))[0]
	recv(t, blocked) // the parent is suspended, its child in flight
	// The child started early, before the commit that suspends the
	// parent (see "Early start" in the scheduler's documentation): wait
	// for that commit.
	waitFor(t, "the parent's poll stored", func() bool { return storedState(t, b1.srv, id) == store.Suspended })
	stored, err := b1.srv.Store().GetCall(context.Background(), id)
	is.NoErr(err)
	is.Equal(stored.MinResults, int32(1))
	is.Equal(stored.MaxResults, int32(1))
	is.NoErr(b1.srv.Close())

	releaseOnce.Do(func() { close(release) })
	b2 := start()
	r := recv(t, out).GetPollResult()
	is.True(r.GetError() == nil)
	is.Equal(len(r.GetResults()), 1) // resumed by the result, not at once
	is.Equal(strOf(r.GetResults()[0].GetOutput()), "slow")
	is.True(proto.Equal(r.GetTypedCoroutineState(), pyState()))
	waitFor(t, "done", func() bool { return b2.srv.Live() == 0 })
}
