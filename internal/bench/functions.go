package bench

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dispatchkit/dispatch"
	"github.com/dispatchkit/dispatch/flow"
)

// The bench's functions, registered once under names starting with
// "bench.".
var (
	registerOnce sync.Once
	fns          struct {
		echo    *dispatch.Function[int, int]
		held    *dispatch.Function[int, int]
		seq     *dispatch.Function[int, int]
		wf3     *dispatch.Function[int, int]
		gather  *dispatch.Function[int, int]
		sleeper *dispatch.Function[int, int]
		parent  *dispatch.Function[int, int]
	}
	// stepTimer, when set, times the steps of the sequential workflow.
	stepTimer atomic.Pointer[stepClock]
	// holdCalls, when set, fails the calls of the restart workload (for a
	// retry) until the channel is closed.
	holdCalls atomic.Pointer[chan struct{}]
)

func register() {
	registerOnce.Do(func() {
		f := &fns
		f.echo = dispatch.Func("bench.echo", func(_ context.Context, n int) (int, error) { return n, nil })
		f.held = dispatch.Func("bench.held", func(ctx context.Context, n int) (int, error) {
			if h := holdCalls.Load(); h != nil {
				select {
				case <-*h:
				default:
					// Failing (for a retry) rather than blocking: blocked
					// runs would take every slot of the endpoint's
					// concurrency limit, and workflows not yet started
					// would never get one.
					return 0, dispatch.Temporary(errors.New("bench: held until the restart"))
				}
			}
			return n, nil
		})

		var seqNext flow.ContWith[int, int, int]
		seqNext = flow.ThenWith("bench.seq.next", func(ctx *flow.Ctx, left, v int) flow.Step[int] {
			markStep(ctx.Info().DispatchID)
			if left == 0 {
				return flow.Done(v)
			}
			return flow.Await(f.echo.Call(v+1), seqNext.With(left-1))
		})
		f.seq = dispatch.Flow("bench.seq", func(ctx *flow.Ctx, steps int) flow.Step[int] {
			markStep(ctx.Info().DispatchID)
			return flow.Await(f.echo.Call(0), seqNext.With(steps-1))
		})

		wf3c := flow.Then("bench.wf3.second", func(_ *flow.Ctx, v int) flow.Step[int] {
			return flow.Await(f.echo.Call(v+1), flow.Return[int]())
		})
		wf3b := flow.Then("bench.wf3.first", func(_ *flow.Ctx, v int) flow.Step[int] {
			return flow.Await(f.echo.Call(v+1), wf3c)
		})
		f.wf3 = dispatch.Flow("bench.wf3", func(_ *flow.Ctx, n int) flow.Step[int] {
			return flow.Await(f.echo.Call(n), wf3b)
		})

		gathered := flow.Then("bench.gather.sum", func(_ *flow.Ctx, vs []int) flow.Step[int] {
			return flow.Done(len(vs))
		})
		f.gather = dispatch.Flow("bench.gather", func(_ *flow.Ctx, n int) flow.Step[int] {
			calls := make([]flow.Call[int], n)
			for i := range calls {
				calls[i] = f.echo.Call(i)
			}
			return flow.Gather(calls, gathered)
		})

		woke := flow.ThenWith("bench.sleeper.woke", func(_ *flow.Ctx, n int, _ struct{}) flow.Step[int] {
			return flow.Done(n)
		})
		f.sleeper = dispatch.Flow("bench.sleeper", func(_ *flow.Ctx, n int) flow.Step[int] {
			return flow.Sleep(50*time.Minute, woke.With(n))
		})

		f.parent = dispatch.Flow("bench.parent", func(_ *flow.Ctx, n int) flow.Step[int] {
			return flow.Await(f.held.Call(n), flow.Return[int]())
		})
	})
}

// stepClock records when each step of each workflow ran.
type stepClock struct {
	mu    sync.Mutex
	marks map[string][]time.Time
}

func markStep(id string) {
	c := stepTimer.Load()
	if c == nil {
		return
	}
	now := time.Now()
	c.mu.Lock()
	c.marks[id] = append(c.marks[id], now)
	c.mu.Unlock()
}

func (c *stepClock) reset() {
	c.mu.Lock()
	clear(c.marks)
	c.mu.Unlock()
}

// deltas returns the time between consecutive steps of the workflows of
// the given ids.
func (c *stepClock) deltas(ids []string) []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []time.Duration
	for _, id := range ids {
		ts := c.marks[id]
		for i := 1; i < len(ts); i++ {
			out = append(out, ts[i].Sub(ts[i-1]))
		}
	}
	return out
}
