package bench

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dispatchkit/dispatch"
)

// (a) A sequential workflow: each step awaits one call. Every step of a
// workflow marks the clock, so the time between two marks is one await:
// suspend, run the call, deliver its result, resume.
//
// With LongSteps, workflows of LongSteps steps run too, on the same
// server, alternating with the Steps ones so that the machine's load
// weighs on both alike: an await step should cost the same whatever the
// step count (O(1) per step), so the table prints the ratio of their p50s.
// The long workflows are as many as make about the same number of steps
// as the short ones, and at least 3.
func sequential(ctx context.Context, o *runner) ([]row, error) {
	d, err := o.open("a")
	if err != nil {
		return nil, err
	}
	defer d.Close()
	clock := &stepClock{marks: map[string][]time.Time{}}
	stepTimer.Store(clock)
	defer stepTimer.Store(nil)
	// One workflow to warm up connections and caches, not measured.
	if err := runOK(ctx, d, fns.seq.Call(o.Steps)); err != nil {
		return nil, err
	}
	clock.reset()
	longRuns := 0
	if o.LongSteps > 0 {
		longRuns = max(3, o.Runs*o.Steps/o.LongSteps)
	}
	var short, long []string
	for i := 0; i < o.Runs || i < longRuns; i++ {
		if i < o.Runs {
			id, err := runID(ctx, d, fns.seq.Call(o.Steps))
			if err != nil {
				return nil, err
			}
			short = append(short, id)
		}
		if i < longRuns {
			id, err := runID(ctx, d, fns.seq.Call(o.LongSteps))
			if err != nil {
				return nil, err
			}
			long = append(long, id)
		}
	}
	goal, ok := o.stepGoal()
	rows, p50, err := stepRows(clock.deltas(short), o.Steps, goal, ok)
	if err != nil || o.LongSteps == 0 {
		return rows, err
	}
	longRows, longP50, err := stepRows(clock.deltas(long), o.LongSteps, "", nil)
	if err != nil {
		return nil, err
	}
	rows = append(rows, longRows...)
	rows = append(rows, measured(
		fmt.Sprintf("(a) p50 per await step, %d-step / %d-step workflow", o.LongSteps, o.Steps),
		float64(longP50)/float64(p50), ratioOf, "<= 1.10 (O(1) per step)", func(v float64) bool { return v <= 1.10 },
	))
	return rows, nil
}

// stepRows are the rows of the p50 and p99 of the steps of the workflows
// of n steps, and the p50.
func stepRows(steps []time.Duration, n int, goal string, ok func(float64) bool) ([]row, time.Duration, error) {
	if len(steps) == 0 {
		return nil, 0, errors.New("no step was timed")
	}
	slices.Sort(steps)
	p50, p99 := steps[len(steps)*50/100], steps[min(len(steps)-1, len(steps)*99/100)]
	what := fmt.Sprintf("(a) %d-step sequential workflow, 1 at a time", n)
	return []row{
		measured(what+": p50 per await step", float64(p50), msOf, goal, ok),
		measured(what+": p99 per await step", float64(p99), msOf, "", nil),
	}, p50, nil
}

// (b) 3-step workflows from concurrent clients, each dispatching one
// workflow and waiting for its result before the next.
func concurrent(ctx context.Context, o *runner) ([]row, error) {
	d, err := o.open("b")
	if err != nil {
		return nil, err
	}
	defer d.Close()
	elapsed, cpu, cpuOK, err := clients(ctx, o.Clients, o.Workflows, func(ctx context.Context, i int) error {
		return runOK(ctx, d, fns.wf3.Call(i))
	})
	if err != nil {
		return nil, err
	}
	rate := float64(o.Workflows) / elapsed.Seconds()
	goal, ok := o.rateGoal()
	rows := []row{measured(
		fmt.Sprintf("(b) 3-step workflows, %d clients (%d in all)", o.Clients, o.Workflows),
		rate, rateOf, goal, ok,
	)}
	if cpuOK {
		// CPU time is steadier than wall time on a shared machine, and
		// says what the workload costs: server, SDK and clients together.
		per := cpu / time.Duration(o.Workflows)
		rows = append(rows, measured(
			"(b) CPU per workflow (server, endpoint and clients; 7 Run requests)",
			float64(per.Microseconds()), microsOf, "", nil,
		))
	}
	return rows, nil
}

// clients runs jobs 1..n on c goroutines, each taking the next job when
// it is done with one, as (b)'s clients do, and returns how long they
// took and the CPU time the process spent meanwhile (cpuOK false where
// it is not measured). The first error cancels the other jobs and is
// returned.
func clients(ctx context.Context, c, n int, job func(ctx context.Context, i int) error) (elapsed, cpu time.Duration, cpuOK bool, err error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, c)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := time.Now()
	cpu0, cpuOK := cpuTime()
	for range c {
		wg.Go(func() {
			for i := next.Add(1); i <= int64(n); i = next.Add(1) {
				if err := job(ctx, int(i)); err != nil {
					errs <- err
					cancel()
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed = time.Since(start)
	cpu1, _ := cpuTime()
	close(errs)
	return elapsed, cpu1 - cpu0, cpuOK, <-errs
}

// (c) One workflow gathering many calls (1,000 in flight at a time, the
// protocol's limit per poll).
func gather(ctx context.Context, o *runner) ([]row, error) {
	d, err := o.open("c")
	if err != nil {
		return nil, err
	}
	defer d.Close()
	start := time.Now()
	if err := runOK(ctx, d, fns.gather.Call(o.Gather)); err != nil {
		return nil, err
	}
	elapsed := time.Since(start)
	return []row{measured(
		fmt.Sprintf("(c) Gather of %s calls", fmtInt(int64(o.Gather))),
		float64(elapsed), secondsOf, "< 5 s", func(v float64) bool { return v < float64(5*time.Second) },
	)}, nil
}

// (d) Many workflows asleep: the server's heap per suspended workflow
// (the whole process's live heap before and after, so the SDK's share, if
// any, counts too) and the size of the coroutine states it keeps.
func suspended(ctx context.Context, o *runner) ([]row, error) {
	d, err := o.open("d")
	if err != nil {
		return nil, err
	}
	defer d.Close()
	srv := d.server()
	sleeper := func(i int) dispatch.Caller { return fns.sleeper.Call(i) }
	// Warm up connections and the first allocations of the engine.
	warm := min(o.Sleepers, 100)
	if _, err := dispatchAll(ctx, d, warm, sleeper); err != nil {
		return nil, err
	}
	if err := waitUntil(ctx, "sleepers to suspend", func() bool { return srv.Stats().Suspended == warm }); err != nil {
		return nil, err
	}
	before := liveHeap()
	n := o.Sleepers - warm
	if _, err := dispatchAll(ctx, d, n, sleeper); err != nil {
		return nil, err
	}
	if err := waitUntil(ctx, "sleepers to suspend", func() bool { return srv.Stats().Suspended == o.Sleepers }); err != nil {
		return nil, err
	}
	after := liveHeap()
	st := srv.Stats()
	what := fmt.Sprintf("(d) %s workflows asleep", fmtInt(int64(o.Sleepers)))
	rows := []row{}
	if n > 0 {
		per := float64(int64(after)-int64(before)) / float64(n)
		rows = append(rows, measured(what+": server memory per workflow", per, fmtBytes, "< 2 KB", func(v float64) bool { return v < 2048 }))
	} else {
		rows = append(rows, row{what: what + ": server memory per workflow", value: "n/a (raise --sleepers above 100)", goal: "< 2 KB", met: "-"})
	}
	if st.Stateful > 0 {
		rows = append(rows, measured(what+": state per step (stored)", float64(st.StateBytes)/float64(st.Stateful), fmtBytes, "", nil))
	}
	return rows, nil
}

func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// (e) A restart with calls in flight: workflows awaiting a call that fails
// (and is retried) until the server stops; then a new program instance (a
// new endpoint port, as local mode does at each run) reopens the same
// state directory, and the time runs until every workflow has finished.
func restart(ctx context.Context, o *runner) ([]row, error) {
	what := fmt.Sprintf("(e) restart with %s calls in flight: all resumed and done", fmtInt(int64(o.Inflight/2*2)))
	if o.Memory && !o.pg {
		return []row{{what: what, value: "skipped: needs the SQLite store", goal: "< 2 s", met: "-"}}, nil
	}
	hold := make(chan struct{})
	holdCalls.Store(&hold)
	release := sync.OnceFunc(func() { close(hold) })
	defer func() {
		release()
		holdCalls.Store(nil)
	}()

	d, err := o.open("e")
	if err != nil {
		return nil, err
	}
	n := o.Inflight / 2
	ids, err := dispatchAll(ctx, d, n, func(i int) dispatch.Caller { return fns.parent.Call(i) })
	if err != nil {
		d.Close()
		return nil, err
	}
	srv := d.server()
	err = waitUntil(ctx, "the calls to be in flight", func() bool {
		st := srv.Stats()
		return st.Live == 2*n && st.Suspended == n
	})
	if err != nil {
		d.Close()
		return nil, err
	}
	if err := d.Close(); err != nil {
		return nil, err
	}
	release()

	start := time.Now()
	d, err = o.open("e")
	if err != nil {
		return nil, err
	}
	defer d.Close()
	recovered := time.Since(start)
	for _, id := range ids {
		if err := waitOK(ctx, d, id); err != nil {
			return nil, err
		}
	}
	elapsed := time.Since(start)
	return []row{
		measured(what, float64(elapsed), secondsOf, "< 2 s", func(v float64) bool { return v < float64(2*time.Second) }),
		measured("(e) of which recovery (reading the store, rebuilding memory)", float64(recovered), msOf, "", nil),
	}, nil
}
