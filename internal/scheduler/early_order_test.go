package scheduler

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	sdkv1 "buf.build/gen/go/stealthrocket/dispatch-proto/protocolbuffers/go/dispatch/sdk/v1"
	"github.com/matryer/is"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/dispatchkit/dispatch/internal/store"
)

// first is the position of the first row of call id written, or -1.
func (g *gateStore) first(id string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	for i, r := range g.rows {
		if strings.HasPrefix(r, id+" ") {
			return i
		}
	}
	return -1
}

// last is the position of the last row of call id written, or -1.
func (g *gateStore) last(id string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	for i := len(g.rows) - 1; i >= 0; i-- {
		if strings.HasPrefix(g.rows[i], id+" ") {
			return i
		}
	}
	return -1
}

// count is how many rows "id state" were written.
func (g *gateStore) count(id string, s store.CallState) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := 0
	for _, r := range g.rows {
		if r == id+" "+s.String() {
			n++
		}
	}
	return n
}

// TestEarlyStartOrder blocks the commit that creates the children of the
// root's Poll and lets something happen to them (or to the root) before
// it: a retry, an expiration, a Gather finishing out of order, a nested
// workflow finishing, the root's max_wait. Nothing may reach the store
// before the batch it follows from: every child's creation (pending) is
// stored and is its first row, every later row of it comes after (its
// outcome last, but for the child the max_wait leaves running, stored
// once), the root's suspension comes before its final row, and the
// workflow ends as it would without early start.
func TestEarlyStartOrder(t *testing.T) {
	type behaviour func(ctx context.Context, req *sdkv1.RunRequest, n int32) (*sdkv1.RunResponse, error)
	poll := func(minResults int32, wait time.Duration, calls ...*sdkv1.Call) *sdkv1.RunResponse {
		for _, c := range calls {
			c.Endpoint = earlyURL
		}
		return &sdkv1.RunResponse{Status: sdkv1.Status_STATUS_OK, Directive: &sdkv1.RunResponse_Poll{Poll: &sdkv1.Poll{
			State:      &sdkv1.Poll_CoroutineState{CoroutineState: []byte("s")},
			MinResults: minResults, MaxResults: 10, MaxWait: durationpb.New(wait), Calls: calls,
		}}}
	}
	// joined is the outputs of a resume's results, "|" between them, and
	// "-" for a result without output.
	joined := func(req *sdkv1.RunRequest) string {
		var out []string
		for _, r := range req.GetPollResult().GetResults() {
			s := strOfAny(r.GetOutput())
			if s == "" {
				s = "-"
			}
			out = append(out, s)
		}
		return strings.Join(out, "|")
	}
	// pollThenJoin is a root that polls copies of calls, with an hour's
	// max_wait, and exits with the joined outputs of its resume.
	pollThenJoin := func(minResults int32, calls ...*sdkv1.Call) behaviour {
		return func(_ context.Context, req *sdkv1.RunRequest, _ int32) (*sdkv1.RunResponse, error) {
			if req.GetPollResult() == nil {
				fresh := make([]*sdkv1.Call, len(calls))
				for i, c := range calls {
					fresh[i] = proto.Clone(c).(*sdkv1.Call)
				}
				return poll(minResults, time.Hour, fresh...), nil
			}
			return exitWith(str(joined(req))), nil
		}
	}
	var eng *Engine // the engine of the running case
	tests := []struct {
		name string
		fns  map[string]behaviour // by function; "wf" is the root
		// before holds once what the case is about has happened, while
		// the creation commit still waits.
		before func(e *Engine, runs map[string]int32) bool
		want   string // the root's output
		// childLive says the child still runs when the root is done (the
		// max_wait case): its creation is stored, and nothing since.
		childLive bool
		// retries is how many times each child is retried: one Pending
		// row each, after its creation's.
		retries int
	}{
		{
			name: "a child retried (temporary error) before its creation commit",
			fns: map[string]behaviour{
				"wf": pollThenJoin(1, &sdkv1.Call{Function: "flaky", Input: str("f")}),
				"flaky": func(_ context.Context, req *sdkv1.RunRequest, n int32) (*sdkv1.RunResponse, error) {
					if n == 1 {
						return &sdkv1.RunResponse{Status: sdkv1.Status_STATUS_TEMPORARY_ERROR, Directive: &sdkv1.RunResponse_Exit{Exit: &sdkv1.Exit{
							Result: &sdkv1.CallResult{Error: &sdkv1.Error{Type: "x", Message: "again"}}}}}, nil
					}
					return exitWith(req.GetInput()), nil
				},
			},
			before:  func(e *Engine, runs map[string]int32) bool { return runs["flaky"] == 2 && liveOf(e, "wf") == 0 },
			want:    "f",
			retries: 1,
		},
		{
			name: "a child expired before its creation commit",
			fns: map[string]behaviour{
				"wf": pollThenJoin(1, &sdkv1.Call{Function: "slow", Input: str("s"), Expiration: durationpb.New(20 * time.Millisecond)}),
				"slow": func(ctx context.Context, _ *sdkv1.RunRequest, _ int32) (*sdkv1.RunResponse, error) {
					<-ctx.Done() // until its expiration
					return nil, ctx.Err()
				},
			},
			before: func(e *Engine, _ map[string]int32) bool { return liveOf(e, "slow") == 0 && liveOf(e, "wf") == 0 },
			want:   "-",
		},
		{
			name: "a Gather whose children finish out of order",
			fns: map[string]behaviour{
				"wf": pollThenJoin(2, &sdkv1.Call{Function: "first", Input: str("1")}, &sdkv1.Call{Function: "second", Input: str("2")}),
				"first": func(ctx context.Context, req *sdkv1.RunRequest, _ int32) (*sdkv1.RunResponse, error) {
					// Answers once the engine has applied second's outcome.
					if !eventually(func() bool { return liveOf(eng, "second") == 0 }) {
						t.Error("second's outcome was never applied")
					}
					return exitWith(req.GetInput()), nil
				},
				"second": func(ctx context.Context, req *sdkv1.RunRequest, _ int32) (*sdkv1.RunResponse, error) {
					return exitWith(req.GetInput()), nil
				},
			},
			before: func(e *Engine, _ map[string]int32) bool { return liveOf(e, "first") == 0 && liveOf(e, "second") == 0 },
			want:   "2|1", // in their order of arrival
		},
		{
			name: "a nested workflow finished before its creation commit",
			fns: map[string]behaviour{
				"wf": pollThenJoin(1, &sdkv1.Call{Function: "sub", Input: str("s")}),
				"sub": func(_ context.Context, req *sdkv1.RunRequest, n int32) (*sdkv1.RunResponse, error) {
					if req.GetPollResult() == nil {
						return poll(1, time.Hour, &sdkv1.Call{Function: "leaf", Input: str("l")}), nil
					}
					return exitWith(str("sub(" + joined(req) + ")")), nil
				},
				"leaf": func(_ context.Context, req *sdkv1.RunRequest, _ int32) (*sdkv1.RunResponse, error) {
					return exitWith(req.GetInput()), nil
				},
			},
			// sub's exit carries leaf's held outcome: it is not held in
			// turn (no chains), and wf resumes once the pair is stored.
			before: func(e *Engine, _ map[string]int32) bool { return liveOf(e, "sub") == 0 },
			want:   "sub(l)",
		},
		{
			name: "the root's max_wait ends before the creation commit",
			fns: map[string]behaviour{
				"wf": func(_ context.Context, req *sdkv1.RunRequest, n int32) (*sdkv1.RunResponse, error) {
					if req.GetPollResult() == nil {
						return poll(1, time.Second, &sdkv1.Call{Function: "slow", Input: str("s")}), nil // the least allowed
					}
					return exitWith(str("waited:" + joined(req))), nil
				},
				"slow": func(ctx context.Context, _ *sdkv1.RunRequest, _ int32) (*sdkv1.RunResponse, error) {
					<-ctx.Done() // until Close
					return nil, ctx.Err()
				},
			},
			// slow runs (started early) until Close: its rows are checked.
			before:    func(e *Engine, runs map[string]int32) bool { return runs["slow"] == 1 && liveOf(e, "wf") == 0 },
			want:      "waited:",
			childLive: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			st := newGateStore()
			var blocked atomic.Bool
			var mu sync.Mutex
			runs := map[string]int32{}
			var children []string
			count := func() map[string]int32 {
				mu.Lock()
				defer mu.Unlock()
				m := make(map[string]int32, len(runs))
				for k, v := range runs {
					m[k] = v
				}
				return m
			}
			run := func(ctx context.Context, req *sdkv1.RunRequest) (*sdkv1.RunResponse, error) {
				fn := req.GetFunction()
				mu.Lock()
				runs[fn]++
				n := runs[fn]
				if fn != "wf" && n == 1 {
					children = append(children, req.GetDispatchId())
				}
				mu.Unlock()
				resp, err := tt.fns[fn](ctx, req, n)
				if fn == "wf" && blocked.CompareAndSwap(false, true) {
					st.set("block") // the commit of this Poll and its children waits
				}
				return resp, err
			}
			e := started(t, Config{
				Store: st, Local: &LocalEndpoint{URL: earlyURL, Run: run},
				MaxHold: time.Minute, CommitRetry: -1,
				MinBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond,
			})
			eng = e            // before the Dispatch: no call runs until then
			defer st.release() // before Close, whatever happens

			ids, err := e.Dispatch(context.Background(), []*sdkv1.Call{{Function: "wf", Endpoint: earlyURL, Input: str("x")}})
			is.NoErr(err)
			root := ids[0]
			wait(t, st.blocked, "the creation commit")
			until(t, "the case to happen", func() bool { return tt.before(e, count()) })
			is.True(st.first(root) < 0 || st.index(root, store.Suspended) < 0) // nothing stored since the block
			st.release()

			row := finalRow(t, e, root)
			is.Equal(outputOf(row), tt.want)
			is.True(e.Stats().Early > 0)
			suspended := st.index(root, store.Suspended)
			is.True(suspended >= 0 && suspended < st.index(root, store.Done))
			mu.Lock()
			ids = append([]string(nil), children...)
			mu.Unlock()
			for _, id := range ids {
				// The creation commit was released, so every child's
				// creation is stored, in every case.
				created := st.index(id, store.Pending)
				is.True(created >= 0)
				is.Equal(st.first(id), created)                     // created first
				is.Equal(st.count(id, store.Pending), 1+tt.retries) // a retry's row is not its creation
				done := st.index(id, store.Done)
				if tt.childLive {
					is.Equal(done, -1)             // still live in memory
					is.Equal(st.last(id), created) // and never stored since
					continue
				}
				is.True(created < done)     // its outcome comes after its creation
				is.Equal(st.last(id), done) // and is its last row
			}
		})
	}
}
