package scheduler

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	sdkv1 "buf.build/gen/go/stealthrocket/dispatch-proto/protocolbuffers/go/dispatch/sdk/v1"
	"github.com/matryer/is"

	"github.com/dispatchkit/dispatch/internal/store"
)

// liveOf counts the live calls of function fn.
func liveOf(e *Engine, fn string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, c := range e.calls {
		if c.function == fn {
			n++
		}
	}
	return n
}

// eventually polls cond every millisecond until it holds, for at most
// 10 s, and reports whether it did.
func eventually(cond func() bool) bool {
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(time.Millisecond)
	}
	return true
}

// until is eventually, failing the test if cond never holds. Call it from
// the test's goroutine only.
func until(t *testing.T, what string, cond func() bool) {
	t.Helper()
	if !eventually(cond) {
		t.Fatalf("timed out waiting for %s", what)
	}
}

// TestEarlyStartBehind is the engine's side of store.Committer.Behind:
// while the committer retries a failed transaction, or while more than a
// full group of batches waits behind the one in flight, a poll's children
// do not start early: they wait for the commit that creates them, and
// run with their row durable. When the committer keeps up they start
// early, as TestEarlyStart shows.
func TestEarlyStartBehind(t *testing.T) {
	tests := []struct {
		name string
		// behind makes the committer fall behind, from the root's first
		// run (before it answers its Poll); nil leaves it keeping up.
		behind func(t *testing.T, e *Engine, st *gateStore)
		heal   func(st *gateStore)
		early  int64 // Stats().Early at the end
	}{
		{
			name:  "keeping up: the child starts early",
			early: 1,
		},
		{
			name: "retrying a failed transaction: the child waits for its commit",
			behind: func(t *testing.T, e *Engine, st *gateStore) {
				st.set("fail") // every Apply fails until healed
				if err := e.commit.Submit(&store.Batch{}, nil); err != nil {
					t.Error(err)
				}
				if !eventually(e.commit.Behind) {
					t.Error("the committer never retried the failed transaction")
				}
			},
			heal: func(st *gateStore) { st.set("") },
		},
		{
			name: "a full group waiting: the child waits for its commit",
			behind: func(t *testing.T, e *Engine, st *gateStore) {
				st.set("block")
				if err := e.commit.Submit(&store.Batch{}, nil); err != nil {
					t.Error(err)
				}
				wait(t, st.blocked, "an Apply to block")
				for range 4096 + 1 { // store.maxAhead, and one more
					if err := e.commit.Submit(&store.Batch{}, nil); err != nil {
						t.Error(err)
					}
				}
				if !e.commit.Behind() {
					t.Error("the committer is not behind with a full group waiting")
				}
			},
			heal: func(st *gateStore) { st.release() },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			st := newGateStore()
			r := &runs{}
			var e *Engine
			engineSet := make(chan struct{})
			var first atomic.Bool
			first.Store(true)
			r.wf = func(_ context.Context, req *sdkv1.RunRequest) error {
				if req.GetPollResult() == nil && first.CompareAndSwap(true, false) && tt.behind != nil {
					<-engineSet
					tt.behind(t, e, st)
				}
				return nil
			}
			var ranDurable, ranAhead atomic.Int32
			r.echo = func(_ context.Context, req *sdkv1.RunRequest) error {
				if _, err := st.Store.GetCall(context.Background(), req.GetDispatchId()); err == nil {
					ranDurable.Add(1)
				} else {
					ranAhead.Add(1)
				}
				return nil
			}
			e = started(t, Config{
				Store: st, Local: &LocalEndpoint{URL: earlyURL, Run: r.run},
				MaxHold: time.Minute, CommitRetry: time.Minute, // retried until healed
			})
			if tt.heal != nil {
				defer tt.heal(st) // before Close, which commits what waits
			}
			close(engineSet)

			ids, err := e.Dispatch(context.Background(), []*sdkv1.Call{{Function: "wf", Endpoint: earlyURL, Input: str("x")}})
			is.NoErr(err)
			if tt.behind != nil {
				// The root's Poll is applied: its child exists, and waits.
				until(t, "the child to be made", func() bool { return liveOf(e, "echo") == 1 })
				is.Equal(r.nEcho.Load(), int32(0)) // not started while behind
				is.Equal(e.Stats().Early, int64(0))
				tt.heal(st)
			}
			row := finalRow(t, e, ids[0])
			is.Equal(outputOf(row), "x.0")
			is.Equal(r.nEcho.Load(), int32(1))
			is.Equal(e.Stats().Early, tt.early)
			if tt.behind != nil {
				is.Equal(ranDurable.Load(), int32(1)) // ran once its row was stored
				is.Equal(ranAhead.Load(), int32(0))
			}
			child := r.echoID(0)
			created, done := st.index(child, store.Pending), st.index(child, store.Done)
			is.True(created >= 0 && created < done) // the child's outcome after its creation
		})
	}
}
