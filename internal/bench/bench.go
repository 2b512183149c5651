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
	"strings"
	"text/tabwriter"
	"time"

	sdkv1 "buf.build/gen/go/stealthrocket/dispatch-proto/protocolbuffers/go/dispatch/sdk/v1"
	"github.com/rs/zerolog"

	"github.com/dispatchkit/dispatch"
	"github.com/dispatchkit/dispatch/server"
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
	{"f", floor},
}

// runner is one run of the bench: its options and what the workloads
// share.
type runner struct {
	Options
	round   int // the round running, from 1
	hc      *http.Client
	log     zerolog.Logger
	rootDir string // the temporary directory of the databases; "" with Memory
	lane           // the store and transport of the workload running
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
	// must: SQLite's synchronous setting, or PostgreSQL's own. Its
	// transport column says how the server reaches the endpoint.
	store := fmt.Sprintf("SQLite store (sync=%s)", r.syncName())
	local := fmt.Sprintf("sqlite (sync=%s)", r.syncName())
	if o.Memory {
		store, local = "memory store", "memory"
	}
	var lanes []lane
	for _, t := range o.transports() {
		lanes = append(lanes, lane{store: local, transport: t})
	}
	if o.Postgres != "" {
		for n := 1; n <= max(1, o.Replicas); n++ {
			for _, t := range o.transports() {
				lanes = append(lanes, lane{store: r.pgStoreName(n), transport: t, pg: true, replicas: n})
			}
		}
		defer r.dropDatabases(stderr)
	}
	var rows []row
	for _, w := range workloads {
		if !selected[w.key] {
			continue
		}
		// Rounds outside, lanes inside: each round runs every lane in
		// turn, so that a spell of load on the shared machine weighs on
		// all of them alike, and their figures compare.
		rounds := make([][][]row, len(lanes))
		for r.round = 1; r.round <= o.Rounds; r.round++ {
			for i, l := range lanes {
				if l.replicas > 1 && !replicaWorkloads[w.key] {
					continue
				}
				if w.key == "f" && (l.pg || l.transport != "http") {
					continue // no store, no server: once per round, beside the local store's http rows
				}
				r.lane = l
				on := ""
				if len(lanes) > 1 {
					on = fmt.Sprintf(" on %s, %s", l.store, l.transport)
				}
				fmt.Fprintf(stderr, "bench: running (%s)%s%s...\n", w.key, on, r.roundName())
				start := time.Now()
				wctx, cancel := context.WithTimeout(ctx, timeout)
				got, err := w.run(wctx, r)
				cancel()
				if err != nil {
					return fmt.Errorf("bench: workload (%s)%s%s: %w", w.key, on, r.roundName(), err)
				}
				fmt.Fprintf(stderr, "bench: (%s)%s%s took %v\n", w.key, on, r.roundName(), time.Since(start).Round(time.Millisecond))
				rounds[i] = append(rounds[i], got)
			}
		}
		for i, l := range lanes {
			if len(rounds[i]) == 0 {
				continue // not run on this lane
			}
			for _, row := range summarize(rounds[i]) {
				row.store, row.transport = l.store, l.transport
				if w.key == "f" {
					row.store = "none (bare net/http)"
				}
				rows = append(rows, row)
			}
		}
	}
	r.lane = lane{}

	if o.Postgres != "" {
		store += ", then PostgreSQL at " + redactURL(o.Postgres)
		if o.Replicas > 1 {
			store += fmt.Sprintf(" with 1 to %d replicas ((a) and (b); the other workloads with 1)", o.Replicas)
		}
	}
	var reach string
	switch o.Transport {
	case "http":
		reach = "over signed loopback HTTP (--transport http)"
	case "inproc":
		reach = "called in process (--transport inproc)"
	default:
		reach = "called in process (inproc) and over signed loopback HTTP (http), round by round (--transport both)"
	}
	if o.Postgres != "" {
		switch o.Transport {
		case "http":
			reach += "; on PostgreSQL, servers as dispatch serve --postgres runs them"
		case "inproc":
			reach += "; on PostgreSQL, local mode on the database (WithLocalPostgres)"
		default:
			reach += "; on PostgreSQL, local mode on the database (WithLocalPostgres) in process, and servers as dispatch serve --postgres runs them over HTTP"
		}
	}
	fmt.Fprintf(stdout, "dispatch bench: in-process server on %s, and SDK endpoint %s\n", store, reach)
	gogc := debug.SetGCPercent(100)
	debug.SetGCPercent(gogc)
	fmt.Fprintf(stdout, "machine: %s/%s, %d CPUs, %s, GOGC=%d%s\n", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version(), gogc, loadAverage())
	if o.Rounds > 1 {
		fmt.Fprintf(stdout, "%d rounds: the median of each figure, and its range\n", o.Rounds)
	}
	fmt.Fprintln(stdout)
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "workload\tstore\ttransport\tresult\tgoal\tmet\n")
	for _, row := range rows {
		goal, met := row.goal, row.met
		if goal == "" {
			goal, met = "-", "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", row.what, row.store, row.transport, row.value, goal, met)
	}
	return tw.Flush()
}

// A lane is one store and transport that every workload runs on: the
// local store (SQLite or memory) once per transport of --transport, then
// PostgreSQL once per transport too: in process, local mode on the
// database (dispatch.WithLocalPostgres, each replica an instance of the
// program calling its functions in process); over signed HTTP, servers as
// dispatch serve --postgres runs them, with one endpoint for them all.
type lane struct {
	store     string // the store column
	transport string // "inproc" or "http"
	pg        bool   // on PostgreSQL (Options.Postgres)
	replicas  int    // on PostgreSQL: the replicas of its database (1 to Options.Replicas)
}

// replicaWorkloads are the workloads run with several replicas
// (--replicas): the latency of a step and the rate of workflows, which
// the issue asks of 1, 2 and 3 replicas. The others measure one server
// (its memory, its recovery), and run on one replica only.
var replicaWorkloads = map[string]bool{"a": true, "b": true}

// pgStoreName is the store column of the PostgreSQL lane of n replicas:
// the count is named when --replicas asks for several lanes.
func (r *runner) pgStoreName(n int) string {
	switch {
	case r.Replicas < 2:
		return pgStore
	case n == 1:
		return pgStore + ", 1 replica"
	}
	return fmt.Sprintf("%s, %d replicas", pgStore, n)
}

// durable reports whether the lane running syncs the disk at every
// commit: SQLite with --sync full, or PostgreSQL (fsync on by default).
func (r *runner) durable() bool { return r.pg || (r.fullSync() && !r.Memory) }

// stepGoal is the goal of (a)'s p50 per await step on the lane running:
// 0.1 ms in process (ahead of a local function step of DBOS on SQLite,
// 0.125 ms), 0.35 ms over signed HTTP, and 1 ms when every commit syncs
// the disk (ahead of DBOS on PostgreSQL with fsync, 0.90 ms).
func (r *runner) stepGoal() (string, func(float64) bool) {
	limit, goal := 350*time.Microsecond, "<= 0.35 ms"
	switch {
	case r.durable():
		limit, goal = time.Millisecond, "<= 1 ms"
	case r.transport == "inproc":
		limit, goal = 100*time.Microsecond, "<= 0.1 ms"
	}
	return goal, func(v float64) bool { return v <= float64(limit) }
}

// rateGoal is the goal of (b)'s workflows per second on the lane
// running: 5,000 in process, 2,000 over signed HTTP; 1,000 on one
// replica of PostgreSQL (issue 9); none on several replicas, with the
// database on the same machine (the figure is reported, not aimed at),
// nor when every commit of SQLite syncs the disk.
func (r *runner) rateGoal() (string, func(float64) bool) {
	switch {
	case r.pg && r.replicas <= 1:
		return ">= 1,000 wf/s", func(v float64) bool { return v >= 1000 }
	case r.durable():
		return "", nil
	case r.transport == "inproc":
		return ">= 5,000 wf/s", func(v float64) bool { return v >= 5000 }
	}
	return ">= 2,000 wf/s", func(v float64) bool { return v >= 2000 }
}

// loadAverage is ", load 1.23 0.98 0.80" from /proc/loadavg at the end of
// the run, or "" where there is none: the figures of a shared machine
// mean little without it.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return ", load " + strings.Join(f[:3], " ")
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
		// One directory per transport too: the lanes of a round must
		// not recover each other's calls.
		dir = filepath.Join(r.rootDir, fmt.Sprintf("%s-%s-%d", name, r.transport, r.round))
	}
	// The transport of local mode is read from the environment by New;
	// the bench is a process of its own, so setting it here is harmless.
	os.Setenv(dispatch.EnvLocalTransport, r.transport)
	opts := r.localOptions(dispatch.WithLocalServer(dir))
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

// sdkOptions are the options of every SDK instance of the bench (its
// logger, no trace, its HTTP client), after extra.
func (r *runner) sdkOptions(extra ...dispatch.Option) []dispatch.Option {
	return append(extra, dispatch.WithZerolog(r.log), dispatch.WithTrace(nil), dispatch.WithHTTPClient(r.hc))
}

// localOptions are sdkOptions for an instance in local mode whose server
// is named by where (WithLocalServer, WithLocalPostgres), serving its
// endpoint on a random loopback port, whatever the environment says.
func (r *runner) localOptions(where dispatch.Option) []dispatch.Option {
	return r.sdkOptions(where, dispatch.WithEndpointURL(""))
}

// runOK dispatches c and waits for its outcome, which must be OK.
func runOK(ctx context.Context, a *app, c dispatch.Caller) error {
	_, err := runID(ctx, a, c)
	return err
}

// runID is runOK that also returns the call's id.
func runID(ctx context.Context, a *app, c dispatch.Caller) (string, error) {
	ids, srv, err := a.dispatchAt(ctx, c)
	if err != nil {
		return "", err
	}
	return ids[0], waitAt(ctx, srv, ids[0])
}

// waitOK waits for the outcome of call id at a's (first) server, which
// must be OK.
func waitOK(ctx context.Context, a *app, id string) error { return waitAt(ctx, a.server(), id) }

// waitAt is waitOK at the server srv.
func waitAt(ctx context.Context, srv *server.Server, id string) error {
	out, err := srv.Result(ctx, id)
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
