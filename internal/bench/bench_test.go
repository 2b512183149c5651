package bench_test

import (
	"bytes"
	"context"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/matryer/is"
	"go.uber.org/goleak"

	"github.com/dispatchkit/dispatch/internal/bench"
	"github.com/dispatchkit/dispatch/internal/pgtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(pgtest.Main(m)) }

// tiny scales every workload down so that the bench runs in a test; the
// figures are not checked, only that each row is there.
func tiny(dir string) bench.Options {
	return bench.Options{
		Only: "a,b,c,d,e", Dir: dir, Rounds: 1,
		Steps: 3, Runs: 2, Clients: 2, Workflows: 6, Gather: 30, Sleepers: 150, Inflight: 20,
	}
}

func TestRun(t *testing.T) {
	tests := []struct {
		name string
		opts func(o *bench.Options)
		pg   bool // with Postgres
		rows []string
		// storeRows are rows that must be there for each store, with
		// Postgres.
		storeRows []string
		// transportRows are rows that must be there for each transport
		// of local mode, inproc and http.
		transportRows []string
		// pgTransportRows are rows that must be there on PostgreSQL for
		// each transport (local mode on the database, and its servers
		// over HTTP).
		pgTransportRows []string
		// lines are rows (by prefix) that must be there with a store
		// column (within spaces); noLines, rows that must not.
		lines, noLines [][2]string
		notRows        []string
		once           []string // rows (by prefix) that must be there exactly once
	}{
		{
			name: "sqlite, all workloads",
			rows: []string{
				"(a) 3-step sequential workflow, 1 at a time: p50 per await step",
				"(a) 3-step sequential workflow, 1 at a time: p99 per await step",
				"(b) 3-step workflows, 2 clients (6 in all)",
				"(c) Gather of 30 calls",
				"(d) 150 workflows asleep: server memory per workflow",
				"(d) 150 workflows asleep: state per step (stored)",
				"(e) restart with 20 calls in flight: all resumed and done",
				"SQLite store (sync=normal)",
				"sqlite (sync=normal)",
			},
			notRows: []string{"12-step"},
		},
		{
			name: "sqlite, full sync, long workflow",
			opts: func(o *bench.Options) { o.Only, o.Sync, o.LongSteps = "a", "full", 12 },
			rows: []string{
				"(a) 3-step sequential workflow, 1 at a time: p50 per await step",
				"(a) 12-step sequential workflow, 1 at a time: p50 per await step",
				"(a) 12-step sequential workflow, 1 at a time: p99 per await step",
				"(a) p50 per await step, 12-step / 3-step workflow",
				"sqlite (sync=full)",
			},
			notRows: []string{"(b)", "sync=normal"},
		},
		{
			name:    "memory, some workloads",
			opts:    func(o *bench.Options) { o.Memory, o.Only = true, "c, e" },
			rows:    []string{"(c) Gather of 30 calls", "skipped: needs the SQLite store", "memory store"},
			notRows: []string{"(a)", "(b)", "(d)"},
		},
		{
			name: "postgres beside sqlite",
			opts: func(o *bench.Options) { o.Only = "a,b,e" },
			pg:   true,
			rows: []string{"SQLite store (sync=normal), then PostgreSQL at postgres://", " store ", "local mode on the database (WithLocalPostgres) in process"},
			pgTransportRows: []string{
				"(a) 3-step sequential workflow, 1 at a time: p50 per await step",
				"(b) 3-step workflows, 2 clients (6 in all)",
			},
			storeRows: []string{
				"(a) 3-step sequential workflow, 1 at a time: p50 per await step",
				"(a) 3-step sequential workflow, 1 at a time: p99 per await step",
				"(b) 3-step workflows, 2 clients (6 in all)",
				"(e) restart with 20 calls in flight: all resumed and done",
			},
			notRows: []string{"(c)", "(d)", "skipped"},
		},
		{
			name: "postgres with 3 replicas",
			opts: func(o *bench.Options) { o.Only, o.Transport, o.Replicas = "a,b,e", "http", 3 },
			pg:   true,
			rows: []string{"then PostgreSQL at postgres://", "with 1 to 3 replicas ((a) and (b); the other workloads with 1)", ">= 1,000 wf/s"},
			lines: [][2]string{
				{"(a) 3-step sequential workflow, 1 at a time: p50 per await step", "postgresql (its synchronous_commit), 1 replica"},
				{"(a) 3-step sequential workflow, 1 at a time: p50 per await step", "postgresql (its synchronous_commit), 2 replicas"},
				{"(a) 3-step sequential workflow, 1 at a time: p99 per await step", "postgresql (its synchronous_commit), 3 replicas"},
				{"(b) 3-step workflows, 2 clients (6 in all)", "postgresql (its synchronous_commit), 1 replica"},
				{"(b) 3-step workflows, 2 clients (6 in all)", "postgresql (its synchronous_commit), 2 replicas"},
				{"(b) 3-step workflows, 2 clients (6 in all)", "postgresql (its synchronous_commit), 3 replicas"},
				{"(b) 3-step workflows, 2 clients (6 in all)", "sqlite (sync=normal)"},
				{"(e) restart with 20 calls in flight: all resumed and done", "postgresql (its synchronous_commit), 1 replica"},
			},
			noLines: [][2]string{
				{"(e) restart", "postgresql (its synchronous_commit), 2 replicas"},
				{"(e) restart", "postgresql (its synchronous_commit), 3 replicas"},
			},
			notRows: []string{"(c)", "(d)", " inproc "},
		},
		{
			name: "both transports by default, alternating",
			opts: func(o *bench.Options) { o.Only, o.Rounds = "a,b", 2 },
			rows: []string{"called in process (inproc) and over signed loopback HTTP (http), round by round", "load ", " transport "},
			transportRows: []string{
				"(a) 3-step sequential workflow, 1 at a time: p50 per await step",
				"(b) 3-step workflows, 2 clients (6 in all)",
			},
		},
		{
			name:    "http only",
			opts:    func(o *bench.Options) { o.Only, o.Transport = "a", "http" },
			rows:    []string{"over signed loopback HTTP (--transport http)", "<= 0.35 ms"},
			notRows: []string{" inproc ", "<= 0.1 ms"},
		},
		{
			name:    "in process only",
			opts:    func(o *bench.Options) { o.Only, o.Transport = "b", "inproc" },
			rows:    []string{"called in process (--transport inproc)", ">= 5,000 wf/s"},
			notRows: []string{" http ", ">= 2,000 wf/s"},
		},
		{
			name: "the floor of signed HTTP, once per round, beside the local store's http rows",
			opts: func(o *bench.Options) { o.Only = "a,f" },
			lines: [][2]string{
				{"(f) floor of (a) over HTTP: 2 bare signed requests in sequence, p50", "none (bare net/http)"},
				{"(f) floor of (b) over HTTP: bare requests of 3-step workflows, 2 clients", "none (bare net/http)"},
				{"(f) floor of (b): CPU of a workflow's 8 bare requests (7 signed)", "none (bare net/http)"},
				{"(f) floor of (b): the most workflows/s that CPU allows on", "none (bare net/http)"},
			},
			once: []string{"(f) floor of (a) over HTTP"}, // not again for inproc
		},
		{
			name:    "no floor in process only",
			opts:    func(o *bench.Options) { o.Only, o.Transport = "a,f", "inproc" },
			rows:    []string{"(a) 3-step sequential workflow"},
			notRows: []string{"(f)"},
		},
		{
			name:    "rounds",
			opts:    func(o *bench.Options) { o.Only, o.Rounds = "c", 3 },
			rows:    []string{"3 rounds: the median of each figure, and its range", "(c) Gather of 30 calls", " s (", "–"},
			notRows: []string{"(a)", "(b)", "(d)", "(e)"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Not parallel: the bench's functions share package state.
			is := is.New(t)
			o := tiny(t.TempDir())
			if tt.opts != nil {
				tt.opts(&o)
			}
			if tt.pg {
				o.Postgres = pgtest.URL(t)
			}
			var out bytes.Buffer
			is.NoErr(bench.Run(context.Background(), o, &out, io.Discard))
			is.True(strings.Contains(out.String(), "machine: ")) // names the machine
			is.True(strings.Contains(out.String(), "goal"))
			for _, row := range tt.rows {
				if !strings.Contains(out.String(), row) {
					t.Errorf("no row %q in:\n%s", row, out.String())
				}
			}
			for _, row := range tt.storeRows {
				for _, st := range []string{"sqlite (sync=normal)", "postgresql (its synchronous_commit)"} {
					if !slices.ContainsFunc(strings.Split(out.String(), "\n"), func(line string) bool {
						return strings.HasPrefix(line, row) && strings.Contains(line, " "+st+" ")
					}) {
						t.Errorf("no row %q on %s in:\n%s", row, st, out.String())
					}
				}
			}
			for _, row := range tt.pgTransportRows {
				for _, tr := range []string{"inproc", "http"} {
					if !slices.ContainsFunc(strings.Split(out.String(), "\n"), func(line string) bool {
						return strings.HasPrefix(line, row) && strings.Contains(line, " postgresql (its synchronous_commit) ") && strings.Contains(line, " "+tr+" ")
					}) {
						t.Errorf("no row %q on PostgreSQL over %s in:\n%s", row, tr, out.String())
					}
				}
			}
			for _, row := range tt.transportRows {
				for _, tr := range []string{"inproc", "http"} {
					if !slices.ContainsFunc(strings.Split(out.String(), "\n"), func(line string) bool {
						return strings.HasPrefix(line, row) && strings.Contains(line, " "+tr+" ")
					}) {
						t.Errorf("no row %q over %s in:\n%s", row, tr, out.String())
					}
				}
			}
			hasLine := func(l [2]string) bool {
				return slices.ContainsFunc(strings.Split(out.String(), "\n"), func(line string) bool {
					return strings.HasPrefix(line, l[0]) && strings.Contains(line, "  "+l[1]+"  ")
				})
			}
			for _, l := range tt.lines {
				if !hasLine(l) {
					t.Errorf("no row %q on %s in:\n%s", l[0], l[1], out.String())
				}
			}
			for _, l := range tt.noLines {
				if hasLine(l) {
					t.Errorf("a row %q on %s in:\n%s", l[0], l[1], out.String())
				}
			}
			for _, row := range tt.notRows {
				is.True(!strings.Contains(out.String(), row)) // workload not picked
			}
			for _, row := range tt.once {
				if n := strings.Count(out.String(), "\n"+row); n != 1 {
					t.Errorf("%d rows %q, want 1, in:\n%s", n, row, out.String())
				}
			}
		})
	}
}

func TestCheck(t *testing.T) {
	tests := []struct {
		name     string
		opts     func(o *bench.Options)
		selected []string
		err      string
	}{
		{name: "all", selected: []string{"a", "b", "c", "d", "e"}},
		{name: "the floor", opts: func(o *bench.Options) { o.Only = "f" }, selected: []string{"f"}},
		{name: "some, with spaces", opts: func(o *bench.Options) { o.Only = " c, e ,," }, selected: []string{"c", "e"}},
		{name: "rounds below one", opts: func(o *bench.Options) { o.Rounds = 0 }, err: "--rounds 0: want at least 1"},
		{name: "unknown workload", opts: func(o *bench.Options) { o.Only = "a,x" }, err: `--only "a,x": want workloads among a,b,c,d,e,f`},
		{name: "no workload", opts: func(o *bench.Options) { o.Only = " , " }, err: `--only " , " names no workload`},
		{name: "scale below one", opts: func(o *bench.Options) { o.Gather = 0 }, err: "--gather 0: want at least 1"},
		{name: "one call in flight", opts: func(o *bench.Options) { o.Inflight = 1 }, err: "--inflight 1: want at least 2"},
		{name: "sync full", opts: func(o *bench.Options) { o.Sync = "full" }, selected: []string{"a", "b", "c", "d", "e"}},
		{name: "sync normal", opts: func(o *bench.Options) { o.Sync = "normal" }, selected: []string{"a", "b", "c", "d", "e"}},
		{name: "sync unknown", opts: func(o *bench.Options) { o.Sync = "fsync" }, err: `--sync "fsync": want normal (`},
		{name: "sync with memory", opts: func(o *bench.Options) { o.Memory, o.Sync = true, "normal" }, err: "--sync normal: --memory keeps no file to sync"},
		{name: "sync with postgres", opts: func(o *bench.Options) { o.Postgres, o.Sync = "postgres://h/db", "full" }, selected: []string{"a", "b", "c", "d", "e"}},
		{name: "transport both", opts: func(o *bench.Options) { o.Transport = "both" }, selected: []string{"a", "b", "c", "d", "e"}},
		{name: "transport unknown", opts: func(o *bench.Options) { o.Transport = "grpc" }, err: `--transport "grpc": want inproc (in process), http (signed loopback HTTP) or both`},
		{name: "replicas with postgres", opts: func(o *bench.Options) { o.Postgres, o.Replicas = "postgres://h/db", 3 }, selected: []string{"a", "b", "c", "d", "e"}},
		{name: "replicas without postgres", opts: func(o *bench.Options) { o.Replicas = 2 }, err: "--replicas 2: the replicas share a PostgreSQL database: give --postgres URL too"},
		{name: "replicas negative", opts: func(o *bench.Options) { o.Postgres, o.Replicas = "postgres://h/db", -1 }, err: "--replicas -1: want 1 to 12"},
		{name: "replicas beyond the partitions", opts: func(o *bench.Options) { o.Postgres, o.Replicas = "postgres://h/db", 13 }, err: "--replicas 13: want 1 to 12"},
		{name: "long steps negative", opts: func(o *bench.Options) { o.LongSteps = -1 }, err: "--long-steps -1: want 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			o := tiny("")
			if tt.opts != nil {
				tt.opts(&o)
			}
			sel, err := o.Check()
			if tt.err != "" {
				is.True(err != nil)
				is.True(strings.Contains(err.Error(), tt.err)) // names the flag
				// Run refuses it too, before running anything.
				is.Equal(bench.Run(context.Background(), o, io.Discard, io.Discard).Error(), err.Error())
				return
			}
			is.NoErr(err)
			is.Equal(len(sel), len(tt.selected))
			for _, w := range tt.selected {
				is.True(sel[w]) // selected
			}
		})
	}
}
