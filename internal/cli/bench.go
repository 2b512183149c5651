package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	sdkv1 "buf.build/gen/go/stealthrocket/dispatch-proto/protocolbuffers/go/dispatch/sdk/v1"
	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/dispatchkit/dispatch"
	"github.com/dispatchkit/dispatch/flow"
)

// benchCommand is `dispatch bench`: standard workloads run against an
// in-process server and an in-process SDK endpoint (over loopback HTTP),
// printed as a table with the goal of each figure. The goals are goals,
// not tests: the figures move with the machine and its load.
func benchCommand(stdout, stderr io.Writer) *cobra.Command {
	o := benchOptions{}
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure an in-process server and SDK endpoint on standard workloads",
		Long: `Run standard workloads against an in-process Dispatch server and an
in-process SDK endpoint talking over loopback HTTP, and print what they
reach beside the goals:

  (a) a 20-step sequential workflow, one at a time: latency per await step
  (b) 3-step workflows from 32 concurrent clients: workflows per second
  (c) a Gather of 10,000 calls: total time
  (d) 100,000 workflows suspended on a long sleep: server memory per
      workflow, and bytes of coroutine state per step
  (e) a restart with 10,000 calls in flight: time until all have resumed
      and finished

The server keeps its calls in SQLite in a temporary directory (--memory
for the memory store; (e) needs SQLite). With --postgres URL, each workload
runs on SQLite (or memory), then again on PostgreSQL, side by side: the
bench makes a database for each workload on that server and drops it
afterwards, so the URL's user needs CREATEDB. --only picks workloads and
the other flags scale them down. On a shared or noisy machine, --rounds 3
runs each workload three times and prints the median of each figure with
its range.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.check(); err != nil {
				return usageError{err}
			}
			return runBench(cmd.Context(), o, stdout, stderr)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.only, "only", "a,b,c,d,e", "workloads to run, comma-separated, from a,b,c,d,e")
	f.BoolVar(&o.memory, "memory", false, "use the memory store instead of SQLite")
	f.StringVar(&o.postgres, "postgres", "", "also run each workload on PostgreSQL, in databases made on the server of this URL (postgres://user:password@host:5432/postgres)")
	f.StringVar(&o.dir, "dir", "", "where to make the temporary directory of the SQLite databases (default the system's)")
	f.IntVar(&o.steps, "steps", 20, "(a) steps of the sequential workflow")
	f.IntVar(&o.runs, "runs", 50, "(a) sequential workflows measured, one at a time")
	f.IntVar(&o.clients, "clients", 32, "(b) concurrent clients")
	f.IntVar(&o.workflows, "workflows", 6000, "(b) 3-step workflows in all")
	f.IntVar(&o.gather, "gather", 10000, "(c) calls gathered")
	f.IntVar(&o.sleepers, "sleepers", 100000, "(d) workflows suspended on a sleep")
	f.IntVar(&o.inflight, "inflight", 10000, "(e) calls in flight at the restart (half workflows, half their calls)")
	f.IntVar(&o.rounds, "rounds", 1, "run each workload this many times and print the median of each figure, with its range")
	f.BoolVarP(&o.verbose, "verbose", "v", false, "log the server and the SDK to stderr")
	f.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the workloads to this file (go tool pprof)")
	return cmd
}

type benchOptions struct {
	only               string
	memory             bool
	postgres           string // --postgres
	pg                 bool   // the workload running is on PostgreSQL
	pgDBs              map[string]string
	dir                string
	steps, runs        int
	clients, workflows int
	gather             int
	sleepers           int
	inflight           int
	verbose            bool
	cpuProfile         string
	rounds, round      int
	selected           map[string]bool
	hc                 *http.Client
	log                zerolog.Logger
	rootDir            string
}

// roundName is " round N" when there are several rounds.
func (o *benchOptions) roundName() string {
	if o.rounds < 2 {
		return ""
	}
	return fmt.Sprintf(" round %d/%d", o.round, o.rounds)
}

func (o *benchOptions) check() error {
	o.selected = map[string]bool{}
	for w := range strings.SplitSeq(o.only, ",") {
		w = strings.TrimSpace(w)
		if w == "" {
			continue
		}
		if len(w) != 1 || w < "a" || w > "e" {
			return fmt.Errorf("--only %q: want workloads among a,b,c,d,e, such as --only a,c", o.only)
		}
		o.selected[w] = true
	}
	if len(o.selected) == 0 {
		return fmt.Errorf("--only %q names no workload: want some of a,b,c,d,e", o.only)
	}
	for _, n := range []struct {
		name string
		v    int
	}{
		{"steps", o.steps}, {"runs", o.runs}, {"clients", o.clients}, {"workflows", o.workflows},
		{"gather", o.gather}, {"sleepers", o.sleepers}, {"inflight", o.inflight}, {"rounds", o.rounds},
	} {
		if n.v < 1 {
			return fmt.Errorf("--%s %d: want at least 1", n.name, n.v)
		}
	}
	if o.inflight < 2 {
		return fmt.Errorf("--inflight %d: want at least 2 (a workflow and its call)", o.inflight)
	}
	return nil
}

// benchRow is one line of the table.
type benchRow struct {
	what  string
	store string // with --postgres: which store the row is of
	value string
	goal  string
	met   string // "yes", "no" or "" when there is no goal

	// A measured row also has its number, how to print it and, with a
	// goal, whether a number meets it, so that rounds can be summed up.
	v      float64
	format func(float64) string
	ok     func(float64) bool
}

// measured makes the row of a figure v. ok is nil when there is no goal.
func measured(what string, v float64, format func(float64) string, goal string, ok func(float64) bool) benchRow {
	r := benchRow{what: what, value: format(v), goal: goal, v: v, format: format, ok: ok}
	if ok != nil {
		r.met = metIf(ok(v))
	}
	return r
}

// summarize folds the rows of several rounds of one workload into one
// row per figure: the median, with the range. Rows without a number
// (skipped, n/a) keep the last round's text.
func summarize(rounds [][]benchRow) []benchRow {
	last := rounds[len(rounds)-1]
	if len(rounds) == 1 {
		return last
	}
	out := make([]benchRow, 0, len(last))
	for i, r := range last {
		var vs []float64
		for _, round := range rounds {
			if i < len(round) && round[i].what == r.what && round[i].format != nil {
				vs = append(vs, round[i].v)
			}
		}
		if r.format == nil || len(vs) != len(rounds) {
			out = append(out, r)
			continue
		}
		slices.Sort(vs)
		m := measured(r.what, vs[len(vs)/2], r.format, r.goal, r.ok)
		med, lo, hi := r.format(vs[len(vs)/2]), r.format(vs[0]), r.format(vs[len(vs)-1])
		if i := strings.IndexByte(med, ' '); i > 0 && strings.HasSuffix(lo, med[i:]) && strings.HasSuffix(hi, med[i:]) {
			// "0.71 ms (0.70–0.73)": the unit once.
			lo, hi = strings.TrimSuffix(lo, med[i:]), strings.TrimSuffix(hi, med[i:])
		}
		m.value = fmt.Sprintf("%s (%s–%s)", med, lo, hi)
		out = append(out, m)
	}
	return out
}

// Formats of the figures.
func msOf(v float64) string      { return fmtMS(time.Duration(v)) }
func secondsOf(v float64) string { return fmtSeconds(time.Duration(v)) }
func rateOf(v float64) string    { return fmt.Sprintf("%s wf/s", fmtInt(int64(v))) }
func microsOf(v float64) string  { return fmt.Sprintf("%d µs", int64(v)) }

func metIf(ok bool) string {
	if ok {
		return "yes"
	}
	return "no"
}

// benchTimeout bounds each workload, so that a server that loses a call
// fails the bench rather than hanging it.
const benchTimeout = 15 * time.Minute

// workloads in the order they run and print.
var workloads = []struct {
	key string
	run func(ctx context.Context, o *benchOptions) ([]benchRow, error)
}{
	{"a", benchSequential},
	{"b", benchConcurrent},
	{"c", benchGather},
	{"d", benchSuspended},
	{"e", benchRestart},
}

func runBench(ctx context.Context, o benchOptions, stdout, stderr io.Writer) error {
	registerBench()
	o.log = zerolog.Nop()
	if o.verbose {
		o.log = zerolog.New(zerolog.ConsoleWriter{Out: stderr, NoColor: true, TimeFormat: time.TimeOnly}).
			Level(zerolog.InfoLevel).With().Timestamp().Logger()
	}
	tr := &http.Transport{MaxIdleConnsPerHost: 2 * o.clients}
	defer tr.CloseIdleConnections()
	o.hc = &http.Client{Transport: tr}
	if !o.memory {
		// A fresh directory even under --dir: a database left by an
		// earlier run would be recovered and skew the figures.
		root, err := os.MkdirTemp(o.dir, "dispatch-bench-")
		if err != nil {
			return fmt.Errorf("bench: making a directory for the databases: %w (pass --dir)", err)
		}
		defer os.RemoveAll(root)
		o.rootDir = root
	}

	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return fmt.Errorf("bench: --cpuprofile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("bench: --cpuprofile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}

	store := "SQLite store"
	if o.memory {
		store = "memory store"
	}
	stores := []string{""} // the default store
	if o.postgres != "" {
		stores[0] = strings.TrimSuffix(store, " store")
		stores = append(stores, "PostgreSQL")
		defer o.dropDatabases(stderr)
	}
	var rows []benchRow
	for _, w := range workloads {
		if !o.selected[w.key] {
			continue
		}
		for _, st := range stores {
			o.pg = st == "PostgreSQL"
			on := ""
			if st != "" {
				on = " on " + st
			}
			var rounds [][]benchRow
			for o.round = 1; o.round <= o.rounds; o.round++ {
				fmt.Fprintf(stderr, "bench: running (%s)%s%s...\n", w.key, on, o.roundName())
				start := time.Now()
				wctx, cancel := context.WithTimeout(ctx, benchTimeout)
				r, err := w.run(wctx, &o)
				cancel()
				if err != nil {
					return fmt.Errorf("bench: workload (%s)%s%s: %w", w.key, on, o.roundName(), err)
				}
				fmt.Fprintf(stderr, "bench: (%s)%s%s took %v\n", w.key, on, o.roundName(), time.Since(start).Round(time.Millisecond))
				rounds = append(rounds, r)
			}
			for _, r := range summarize(rounds) {
				r.store = st
				rows = append(rows, r)
			}
		}
	}
	o.pg = false

	if o.postgres != "" {
		store += ", then PostgreSQL at " + redactURL(o.postgres)
	}
	fmt.Fprintf(stdout, "dispatch bench: in-process server (%s) and SDK endpoint over loopback HTTP\n", store)
	gogc := debug.SetGCPercent(100)
	debug.SetGCPercent(gogc)
	fmt.Fprintf(stdout, "machine: %s/%s, %d CPUs, %s, GOGC=%d\n", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version(), gogc)
	if o.rounds > 1 {
		fmt.Fprintf(stdout, "%d rounds: the median of each figure, and its range\n", o.rounds)
	}
	fmt.Fprintln(stdout)
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	storeCol := func(r benchRow) string { return "" }
	if o.postgres != "" {
		storeCol = func(r benchRow) string { return r.store + "\t" }
	}
	fmt.Fprintf(tw, "workload\t%sresult\tgoal\tmet\n", storeCol(benchRow{store: "store"}))
	for _, r := range rows {
		goal, met := r.goal, r.met
		if goal == "" {
			goal, met = "-", "-"
		}
		fmt.Fprintf(tw, "%s\t%s%s\t%s\t%s\n", r.what, storeCol(r), r.value, goal, met)
	}
	return tw.Flush()
}

// open starts an SDK instance in local mode, serving its endpoint, with a
// server of its own: in memory, or in SQLite in the directory named name;
// or, for a workload on PostgreSQL, an SDK instance and a server on the
// database named name (see openPostgres).
func (o *benchOptions) open(name string) (*benchApp, error) {
	if o.pg {
		return o.openPostgres(name)
	}
	dir := ""
	if !o.memory {
		dir = filepath.Join(o.rootDir, fmt.Sprintf("%s-%d", name, o.round))
	}
	d, err := dispatch.New(
		dispatch.WithLocalServer(dir),
		dispatch.WithEndpointURL(""), // a random loopback port, whatever the environment says
		dispatch.WithLogger(o.log),
		dispatch.WithTrace(nil),
		dispatch.WithHTTPClient(o.hc),
	)
	if err != nil {
		return nil, err
	}
	if err := d.Start(); err != nil {
		d.Close()
		return nil, err
	}
	return &benchApp{d: d}, nil
}

// runOK dispatches c and waits for its outcome, which must be OK.
func runOK(ctx context.Context, d *benchApp, c dispatch.Caller) error {
	ids, err := d.Dispatch(ctx, c)
	if err != nil {
		return err
	}
	return waitOK(ctx, d, ids[0])
}

func waitOK(ctx context.Context, d *benchApp, id string) error {
	out, err := d.Local().Result(ctx, id)
	if err != nil {
		return err
	}
	if out.Status != sdkv1.Status_STATUS_OK {
		return fmt.Errorf("call %s ended with %s: %s", id, out.Status, out.Result.GetError().GetMessage())
	}
	return nil
}

// dispatchAll dispatches n calls made by mk, 1,000 per request, and
// returns their ids.
func dispatchAll(ctx context.Context, d *benchApp, n int, mk func(i int) dispatch.Caller) ([]string, error) {
	ids := make([]string, 0, n)
	batch := make([]dispatch.Caller, 0, 1000)
	for i := 0; i < n; {
		batch = batch[:0]
		for ; i < n && len(batch) < cap(batch); i++ {
			batch = append(batch, mk(i))
		}
		got, err := d.Dispatch(ctx, batch...)
		if err != nil {
			return nil, err
		}
		ids = append(ids, got...)
	}
	return ids, nil
}

// waitUntil polls cond every 10 ms until it holds or ctx ends: the
// figures it waits for (counts of suspended calls) have no signal.
func waitUntil(ctx context.Context, what string, cond func() bool) error {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		case <-t.C:
		}
	}
	return nil
}

// (a) A sequential workflow: each step awaits one call. Every step of a
// workflow marks the clock, so the time between two marks is one await:
// suspend, run the call, deliver its result, resume.
func benchSequential(ctx context.Context, o *benchOptions) ([]benchRow, error) {
	d, err := o.open("a")
	if err != nil {
		return nil, err
	}
	defer d.Close()
	clock := &stepClock{marks: map[string][]time.Time{}}
	benchClock.Store(clock)
	defer benchClock.Store(nil)
	// One workflow to warm up connections and caches, not measured.
	if err := runOK(ctx, d, benchFns.seq.Call(o.steps)); err != nil {
		return nil, err
	}
	clock.reset()
	for range o.runs {
		if err := runOK(ctx, d, benchFns.seq.Call(o.steps)); err != nil {
			return nil, err
		}
	}
	steps := clock.deltas()
	if len(steps) == 0 {
		return nil, errors.New("no step was timed")
	}
	slices.Sort(steps)
	p50, p99 := steps[len(steps)*50/100], steps[min(len(steps)-1, len(steps)*99/100)]
	what := fmt.Sprintf("(a) %d-step sequential workflow, 1 at a time", o.steps)
	return []benchRow{
		measured(what+": p50 per await step", float64(p50), msOf, "<= 0.5 ms", func(v float64) bool { return v <= float64(500*time.Microsecond) }),
		measured(what+": p99 per await step", float64(p99), msOf, "", nil),
	}, nil
}

// (b) 3-step workflows from concurrent clients, each dispatching one
// workflow and waiting for its result before the next.
func benchConcurrent(ctx context.Context, o *benchOptions) ([]benchRow, error) {
	d, err := o.open("b")
	if err != nil {
		return nil, err
	}
	defer d.Close()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, o.clients)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := time.Now()
	cpu0, cpuOK := cpuTime()
	for range o.clients {
		wg.Go(func() {
			for i := next.Add(1); i <= int64(o.workflows); i = next.Add(1) {
				if err := runOK(ctx, d, benchFns.wf3.Call(int(i))); err != nil {
					errs <- err
					cancel()
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu1, _ := cpuTime()
	close(errs)
	if err := <-errs; err != nil {
		return nil, err
	}
	rate := float64(o.workflows) / elapsed.Seconds()
	rows := []benchRow{measured(
		fmt.Sprintf("(b) 3-step workflows, %d clients (%d in all)", o.clients, o.workflows),
		rate, rateOf, ">= 1,500 wf/s", func(v float64) bool { return v >= 1500 },
	)}
	if cpuOK {
		// CPU time is steadier than wall time on a shared machine, and
		// says what the workload costs: server, SDK and clients together.
		per := (cpu1 - cpu0) / time.Duration(o.workflows)
		rows = append(rows, measured(
			"(b) CPU per workflow (server, endpoint and clients; 7 Run requests)",
			float64(per.Microseconds()), microsOf, "", nil,
		))
	}
	return rows, nil
}

// (c) One workflow gathering many calls (1,000 in flight at a time, the
// protocol's limit per poll).
func benchGather(ctx context.Context, o *benchOptions) ([]benchRow, error) {
	d, err := o.open("c")
	if err != nil {
		return nil, err
	}
	defer d.Close()
	start := time.Now()
	if err := runOK(ctx, d, benchFns.gather.Call(o.gather)); err != nil {
		return nil, err
	}
	elapsed := time.Since(start)
	return []benchRow{measured(
		fmt.Sprintf("(c) Gather of %s calls", fmtInt(int64(o.gather))),
		float64(elapsed), secondsOf, "< 5 s", func(v float64) bool { return v < float64(5*time.Second) },
	)}, nil
}

// (d) Many workflows asleep: the server's heap per suspended workflow
// (the whole process's live heap before and after, so the SDK's share, if
// any, counts too) and the size of the coroutine states it keeps.
func benchSuspended(ctx context.Context, o *benchOptions) ([]benchRow, error) {
	d, err := o.open("d")
	if err != nil {
		return nil, err
	}
	defer d.Close()
	srv := d.Local()
	sleeper := func(i int) dispatch.Caller { return benchFns.sleeper.Call(i) }
	// Warm up connections and the first allocations of the engine.
	warm := min(o.sleepers, 100)
	if _, err := dispatchAll(ctx, d, warm, sleeper); err != nil {
		return nil, err
	}
	if err := waitUntil(ctx, "sleepers to suspend", func() bool { return srv.Stats().Suspended == warm }); err != nil {
		return nil, err
	}
	before := liveHeap()
	n := o.sleepers - warm
	if _, err := dispatchAll(ctx, d, n, sleeper); err != nil {
		return nil, err
	}
	if err := waitUntil(ctx, "sleepers to suspend", func() bool { return srv.Stats().Suspended == o.sleepers }); err != nil {
		return nil, err
	}
	after := liveHeap()
	st := srv.Stats()
	what := fmt.Sprintf("(d) %s workflows asleep", fmtInt(int64(o.sleepers)))
	rows := []benchRow{}
	if n > 0 {
		per := float64(int64(after)-int64(before)) / float64(n)
		rows = append(rows, measured(what+": server memory per workflow", per, fmtBytes, "< 2 KB", func(v float64) bool { return v < 2048 }))
	} else {
		rows = append(rows, benchRow{what: what + ": server memory per workflow", value: "n/a (raise --sleepers above 100)", goal: "< 2 KB", met: "-"})
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
func benchRestart(ctx context.Context, o *benchOptions) ([]benchRow, error) {
	what := fmt.Sprintf("(e) restart with %s calls in flight: all resumed and done", fmtInt(int64(o.inflight/2*2)))
	if o.memory && !o.pg {
		return []benchRow{{what: what, value: "skipped: needs the SQLite store", goal: "< 2 s", met: "-"}}, nil
	}
	hold := make(chan struct{})
	benchHold.Store(&hold)
	release := sync.OnceFunc(func() { close(hold) })
	defer func() {
		release()
		benchHold.Store(nil)
	}()

	d, err := o.open("e")
	if err != nil {
		return nil, err
	}
	n := o.inflight / 2
	ids, err := dispatchAll(ctx, d, n, func(i int) dispatch.Caller { return benchFns.parent.Call(i) })
	if err != nil {
		d.Close()
		return nil, err
	}
	srv := d.Local()
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
	return []benchRow{
		measured(what, float64(elapsed), secondsOf, "< 2 s", func(v float64) bool { return v < float64(2*time.Second) }),
		measured("(e) of which recovery (reading the store, rebuilding memory)", float64(recovered), msOf, "", nil),
	}, nil
}

// The bench's functions, registered once under names starting with
// "bench.".
var (
	benchOnce sync.Once
	benchFns  struct {
		echo    *dispatch.Function[int, int]
		held    *dispatch.Function[int, int]
		seq     *dispatch.Function[int, int]
		wf3     *dispatch.Function[int, int]
		gather  *dispatch.Function[int, int]
		sleeper *dispatch.Function[int, int]
		parent  *dispatch.Function[int, int]
	}
	// benchClock, when set, times the steps of the sequential workflow.
	benchClock atomic.Pointer[stepClock]
	// benchHold, when set, fails the calls of the restart workload (for a
	// retry) until the channel is closed.
	benchHold atomic.Pointer[chan struct{}]
)

func registerBench() {
	benchOnce.Do(func() {
		f := &benchFns
		f.echo = dispatch.Func("bench.echo", func(_ context.Context, n int) (int, error) { return n, nil })
		f.held = dispatch.Func("bench.held", func(ctx context.Context, n int) (int, error) {
			if h := benchHold.Load(); h != nil {
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
	c := benchClock.Load()
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

// deltas returns the time between consecutive steps of every workflow.
func (c *stepClock) deltas() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []time.Duration
	for _, ts := range c.marks {
		for i := 1; i < len(ts); i++ {
			out = append(out, ts[i].Sub(ts[i-1]))
		}
	}
	return out
}

func fmtMS(d time.Duration) string {
	return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
}

func fmtSeconds(d time.Duration) string {
	return fmt.Sprintf("%.2f s", d.Seconds())
}

func fmtBytes(b float64) string {
	if b >= 1024 {
		return fmt.Sprintf("%.2f KB", b/1024)
	}
	return fmt.Sprintf("%.0f B", b)
}

// fmtInt writes n with thousands separators: 10,000.
func fmtInt(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
