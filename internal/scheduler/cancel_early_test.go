package scheduler

import (
	"context"
	"errors"
	"testing"
	"time"

	sdkv1 "buf.build/gen/go/stealthrocket/dispatch-proto/protocolbuffers/go/dispatch/sdk/v1"
	"github.com/matryer/is"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/dispatchkit/dispatch/internal/store"
)

// pollOf is a Poll of calls of the in-process endpoint, resumed by the
// first result.
func pollOf(fns ...string) *sdkv1.RunResponse {
	p := &sdkv1.Poll{
		State:      &sdkv1.Poll_CoroutineState{CoroutineState: []byte("s")},
		MinResults: 1, MaxResults: 1, MaxWait: durationpb.New(time.Hour),
	}
	for _, fn := range fns {
		p.Calls = append(p.Calls, &sdkv1.Call{Function: fn, Endpoint: earlyURL, Input: str(fn)})
	}
	return &sdkv1.RunResponse{Status: sdkv1.Status_STATUS_OK, Directive: &sdkv1.RunResponse_Poll{Poll: p}}
}

// TestCancelThroughEarlyDoneCall cancels a call whose live descendant
// hangs below a descendant that is done, and whose creation commit is
// still in flight (an early-started nested workflow that finished while
// its creating commit waits): r ── a ── p (done) ── g (running). Cancel
// walks g's chain of parents; p is neither live nor in the store yet, and
// must not be taken for a call of no tree, or g would keep running below
// its cancelled ancestor a.
func TestCancelThroughEarlyDoneCall(t *testing.T) {
	for _, tt := range startModes {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			st := newGateStore()
			gStarted := make(chan struct{}, 1)
			gEnded := make(chan error, 1)
			run := func(ctx context.Context, req *sdkv1.RunRequest) (*sdkv1.RunResponse, error) {
				resumed := req.GetPollResult() != nil
				switch fn := req.GetFunction(); {
				case fn == "r" && !resumed:
					return pollOf("a"), nil
				case fn == "a" && !resumed:
					if !tt.late {
						st.set("block") // p's creation commit waits
					}
					return pollOf("p"), nil
				case fn == "p" && !resumed:
					return pollOf("g", "e"), nil
				case fn == "a":
					<-ctx.Done() // a stays live until cancelled
					return nil, ctx.Err()
				case fn == "g":
					gStarted <- struct{}{}
					<-ctx.Done()
					gEnded <- ctx.Err()
					return nil, ctx.Err()
				default: // e, and every resume
					return exitWith(str(fn)), nil
				}
			}
			e := started(t, Config{Store: st, Local: &LocalEndpoint{URL: earlyURL, Run: run}, MaxHold: time.Minute, NoEarlyStart: tt.late})
			defer st.release() // before Close, whatever happens

			_, err := e.Dispatch(context.Background(), []*sdkv1.Call{{Function: "r", Endpoint: earlyURL, Input: str("r")}})
			is.NoErr(err)
			wait(t, gStarted, "g's run")
			until(t, "p to finish", func() bool { return liveOf(e, "p") == 0 })
			var a string
			e.mu.Lock()
			for _, c := range e.calls {
				if c.function == "a" {
					a = c.id
				}
			}
			e.mu.Unlock()
			is.True(a != "")

			n := cancelAsync(t, e, a)
			until(t, "the cancel to apply", func() bool { return liveOf(e, "a") == 0 })
			st.release()
			is.Equal(wait(t, n, "the cancel"), 2) // a and g
			is.True(errors.Is(wait(t, gEnded, "g's request to end"), context.Canceled))
			is.Equal(liveOf(e, "g"), 0)
		})
	}
}

// TestCancelFinishing cancels a call that is final in memory but whose
// final row is not durable yet: a child whose outcome is held for its
// parent's answer (hold.go). Cancel answers 0 (already final) only once
// that row is stored: a crash before would make the call live again, and
// the caller would have been told that there was nothing to cancel.
func TestCancelFinishing(t *testing.T) {
	for _, tt := range startModes {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			st := newGateStore()
			r := &runs{}
			resumed := make(chan struct{}, 1)
			answer := make(chan struct{})
			r.wf = func(_ context.Context, req *sdkv1.RunRequest) error {
				if req.GetPollResult() != nil {
					resumed <- struct{}{}
					<-answer // the held outcome waits for this answer
				}
				return nil
			}
			e := earlyEngine(t, st, r, tt.late)
			ids, err := e.Dispatch(context.Background(), []*sdkv1.Call{{Function: "wf", Endpoint: earlyURL, Input: str("x")}})
			is.NoErr(err)
			wait(t, resumed, "the root's resume with the held outcome")
			child := r.echoID(0)
			is.Equal(e.Stats().Held, int64(1))

			type answered struct {
				n     int
				err   error
				state store.CallState
			}
			got := make(chan answered, 1)
			go func() {
				n, err := e.Cancel(context.Background(), child, "test")
				a := answered{n: n, err: err}
				if row, err := st.Store.GetCall(context.Background(), child); err == nil {
					a.state = row.State
				}
				got <- a
			}()
			var a answered
			returned := false
			until(t, "Cancel to return or wait", func() bool {
				select {
				case a = <-got:
					returned = true
					return true
				default:
					return e.Watched() > 0
				}
			})
			close(answer)
			if !returned {
				a = wait(t, got, "the cancel")
			}
			is.NoErr(a.err)
			is.Equal(a.n, 0)              // already final
			is.Equal(a.state, store.Done) // and durably so when Cancel said it
			row := finalRow(t, e, ids[0])
			is.Equal(outputOf(row), "x.0")
		})
	}
}
