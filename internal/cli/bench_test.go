package cli_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/matryer/is"

	"github.com/dispatchkit/dispatch/internal/pgtest"
)

// tiny scales every workload down so that the bench runs in a test; the
// figures are not checked, only that each row is there.
var tiny = []string{"--steps", "3", "--runs", "2", "--clients", "2", "--workflows", "6",
	"--gather", "30", "--sleepers", "150", "--inflight", "20"}

func TestBench(t *testing.T) {
	tests := []struct {
		name string
		args []string
		pg   bool // with --postgres
		rows []string
		// storeRows are rows that must be there for each store, with
		// --postgres.
		storeRows []string
		notRows   []string
		code      int
		stderr    string
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
				"SQLite store",
			},
		},
		{
			name:    "memory, some workloads",
			args:    []string{"--memory", "--only", "c, e"},
			rows:    []string{"(c) Gather of 30 calls", "skipped: needs the SQLite store", "memory store"},
			notRows: []string{"(a)", "(b)", "(d)"},
		},
		{
			name: "postgres beside sqlite",
			args: []string{"--only", "a,b,e"},
			pg:   true,
			rows: []string{"SQLite store, then PostgreSQL at postgres://", " store "},
			storeRows: []string{
				"(a) 3-step sequential workflow, 1 at a time: p50 per await step",
				"(a) 3-step sequential workflow, 1 at a time: p99 per await step",
				"(b) 3-step workflows, 2 clients (6 in all)",
				"(e) restart with 20 calls in flight: all resumed and done",
			},
			notRows: []string{"(c)", "(d)", "skipped"},
		},
		{
			name:    "rounds",
			args:    []string{"--only", "c", "--rounds", "3"},
			rows:    []string{"3 rounds: the median of each figure, and its range", "(c) Gather of 30 calls", " s (", "–"},
			notRows: []string{"(a)", "(b)", "(d)", "(e)"},
		},
		{
			name:   "rounds below one",
			args:   []string{"--rounds", "0"},
			code:   2,
			stderr: "--rounds 0: want at least 1",
		},
		{
			name:   "unknown workload",
			args:   []string{"--only", "a,x"},
			code:   2,
			stderr: `--only "a,x": want workloads among a,b,c,d,e`,
		},
		{
			name:   "scale below one",
			args:   []string{"--gather", "0"},
			code:   2,
			stderr: "--gather 0: want at least 1",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Not parallel: the bench's functions share package state.
			is := is.New(t)
			args := append(append([]string{"bench", "--dir", t.TempDir()}, tiny...), tt.args...)
			if tt.pg {
				args = append(args, "--postgres", pgtest.URL(t))
			}
			out, errOut, code := run(t, args...)
			is.Equal(code, tt.code) // exit code
			if tt.code != 0 {
				is.True(strings.Contains(errOut, tt.stderr))
				return
			}
			is.True(strings.Contains(out, "machine: ")) // names the machine
			is.True(strings.Contains(out, "goal"))
			for _, row := range tt.rows {
				if !strings.Contains(out, row) {
					t.Errorf("no row %q in:\n%s", row, out)
				}
			}
			for _, row := range tt.storeRows {
				for _, st := range []string{"SQLite", "PostgreSQL"} {
					if !slices.ContainsFunc(strings.Split(out, "\n"), func(line string) bool {
						return strings.HasPrefix(line, row) && strings.Contains(line, " "+st+" ")
					}) {
						t.Errorf("no row %q on %s in:\n%s", row, st, out)
					}
				}
			}
			for _, row := range tt.notRows {
				is.True(!strings.Contains(out, row)) // workload not picked
			}
		})
	}
}
