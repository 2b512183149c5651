package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"text/tabwriter"
	"time"

	sdkv1 "buf.build/gen/go/stealthrocket/dispatch-proto/protocolbuffers/go/dispatch/sdk/v1"
	"github.com/rs/zerolog"

	"github.com/dispatchkit/dispatch"
)

// timeout bounds each workload, so that a server that loses a call fails
// the bench rather than hanging it.
const timeout = 15 * time.Minute

// workloads in the order they run and print.
var workloads = []struct {
	key string
	run func(ctx context.Context, r *runner) ([]row, error)
}{
	{"a", sequential},
	{"b", concurrent},
	{"c", gather},
	{"d", suspended},
	{"e", restart},
}

// runner is one run of the bench: its options and what the workloads
// share.
type runner struct {
	Options
	round   int // the round running, from 1
	hc      *http.Client
	log     zerolog.Logger
	rootDir string // the temporary directory of the databases; "" with Memory
	pg      bool   // the workload running is on PostgreSQL (Options.Postgres)
	pgDBs   map[string]string
}

// roundName is " round N/M" when there are several rounds.
func (r *runner) roundName() string {
	if r.Rounds < 2 {
		return ""
	}
	return fmt.Sprintf(" round %d/%d", r.round, r.Rounds)
}

// Run runs the workloads o selects, writing progress (and, with Verbose,
// the logs of the server and the SDK) to stderr, and the table to stdout.
// It registers the bench's functions (named "bench.*") with package
// dispatch the first time it is called.
func Run(ctx context.Context, o Options, stdout, stderr io.Writer) error {
	selected, err := o.Check()
	if err != nil {
		return err
	}
	register()
	r := &runner{Options: o, log: zerolog.Nop()}
	if o.Verbose {
		r.log = zerolog.New(zerolog.ConsoleWriter{Out: stderr, NoColor: true, TimeFormat: time.TimeOnly}).
			Level(zerolog.InfoLevel).With().Timestamp().Logger()
	}
	tr := &http.Transport{MaxIdleConnsPerHost: 2 * o.Clients}
	defer tr.CloseIdleConnections()
	r.hc = &http.Client{Transport: tr}
	if !o.Memory {
		// A fresh directory even under --dir: a database left by an
		// earlier run would be recovered and skew the figures.
		root, err := os.MkdirTemp(o.Dir, "dispatch-bench-")
		if err != nil {
			return fmt.Errorf("bench: making a directory for the databases: %w (pass --dir)", err)
		}
		defer os.RemoveAll(root)
		r.rootDir = root
	}

	if o.CPUProfile != "" {
		f, err := os.Create(o.CPUProfile)
		if err != nil {
			return fmt.Errorf("bench: --cpuprofile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("bench: --cpuprofile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}

	// The store of each row names its durability, as a fair comparison
	// must: SQLite's synchronous setting, or PostgreSQL's own.
	store := fmt.Sprintf("SQLite store (sync=%s)", r.syncName())
	local := fmt.Sprintf("sqlite (sync=%s)", r.syncName())
	if o.Memory {
		store, local = "memory store", "memory"
	}
	stores := []string{local}
	if o.Postgres != "" {
		stores = append(stores, pgStore)
		defer r.dropDatabases(stderr)
	}
	var rows []row
	for _, w := range workloads {
		if !selected[w.key] {
			continue
		}
		for _, st := range stores {
			r.pg = st == pgStore
			on := ""
			if o.Postgres != "" {
				on = " on " + st
			}
			var rounds [][]row
			for r.round = 1; r.round <= o.Rounds; r.round++ {
				fmt.Fprintf(stderr, "bench: running (%s)%s%s...\n", w.key, on, r.roundName())
				start := time.Now()
				wctx, cancel := context.WithTimeout(ctx, timeout)
				got, err := w.run(wctx, r)
				cancel()
				if err != nil {
					return fmt.Errorf("bench: workload (%s)%s%s: %w", w.key, on, r.roundName(), err)
				}
				fmt.Fprintf(stderr, "bench: (%s)%s%s took %v\n", w.key, on, r.roundName(), time.Since(start).Round(time.Millisecond))
				rounds = append(rounds, got)
			}
			for _, row := range summarize(rounds) {
				row.store = st
				rows = append(rows, row)
			}
		}
	}
	r.pg = false

	if o.Postgres != "" {
		store += ", then PostgreSQL at " + redactURL(o.Postgres)
	}
	reach := "called in process (--transport inproc)"
	if o.Transport == "http" {
		reach = "over signed loopback HTTP (--transport http)"
	}
	if o.Postgres != "" {
		reach += "; on PostgreSQL, over signed loopback HTTP"
	}
	fmt.Fprintf(stdout, "dispatch bench: in-process server on %s, and SDK endpoint %s\n", store, reach)
	gogc := debug.SetGCPercent(100)
	debug.SetGCPercent(gogc)
	fmt.Fprintf(stdout, "machine: %s/%s, %d CPUs, %s, GOGC=%d\n", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version(), gogc)
	if o.Rounds > 1 {
		fmt.Fprintf(stdout, "%d rounds: the median of each figure, and its range\n", o.Rounds)
	}
	fmt.Fprintln(stdout)
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	storeCol := func(r row) string { return r.store + "\t" }
	fmt.Fprintf(tw, "workload\t%sresult\tgoal\tmet\n", storeCol(row{store: "store"}))
	for _, row := range rows {
		goal, met := row.goal, row.met
		if goal == "" {
			goal, met = "-", "-"
		}
		fmt.Fprintf(tw, "%s\t%s%s\t%s\t%s\n", row.what, storeCol(row), row.value, goal, met)
	}
	return tw.Flush()
}

// pgStore is the store column of the rows on PostgreSQL.
const pgStore = "postgresql (its synchronous_commit)"

// syncName is SQLite's synchronous setting of the run: normal or full.
func (r *runner) syncName() string {
	if r.fullSync() {
		return "full"
	}
	return "normal"
}

// open starts an SDK instance in local mode (package local), serving its
// endpoint, with a server of its own: in memory, or in SQLite in the
// directory named name; or, for a workload on PostgreSQL, an SDK instance
// and a server on the database named name (see openPostgres).
func (r *runner) open(name string) (*app, error) {
	if r.pg {
		return r.openPostgres(name)
	}
	dir := ""
	if !r.Memory {
		dir = filepath.Join(r.rootDir, fmt.Sprintf("%s-%d", name, r.round))
	}
	// The transport of local mode is read from the environment by New;
	// the bench is a process of its own, so setting it here is harmless.
	if r.Transport != "" {
		os.Setenv(dispatch.EnvLocalTransport, r.Transport)
	}
	opts := []dispatch.Option{
		dispatch.WithLocalServer(dir),
		dispatch.WithEndpointURL(""), // a random loopback port, whatever the environment says
		dispatch.WithZerolog(r.log),
		dispatch.WithTrace(nil),
		dispatch.WithHTTPClient(r.hc),
	}
	if r.fullSync() {
		opts = append(opts, dispatch.WithLocalFullSync())
	}
	d, err := dispatch.New(opts...)
	if err != nil {
		return nil, err
	}
	if err := d.Start(); err != nil {
		d.Close()
		return nil, err
	}
	return &app{d: d}, nil
}

// runOK dispatches c and waits for its outcome, which must be OK.
func runOK(ctx context.Context, a *app, c dispatch.Caller) error {
	_, err := runID(ctx, a, c)
	return err
}

// runID is runOK that also returns the call's id.
func runID(ctx context.Context, a *app, c dispatch.Caller) (string, error) {
	ids, err := a.Dispatch(ctx, c)
	if err != nil {
		return "", err
	}
	return ids[0], waitOK(ctx, a, ids[0])
}

func waitOK(ctx context.Context, a *app, id string) error {
	out, err := a.server().Result(ctx, id)
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
func dispatchAll(ctx context.Context, d *app, n int, mk func(i int) dispatch.Caller) ([]string, error) {
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
