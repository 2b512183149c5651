package cli_test

import (
	"strings"
	"testing"

	"github.com/matryer/is"

	"github.com/dispatchkit/dispatch/internal/pgtest"
)

// tiny scales every workload down so that the bench runs in a test; the
// figures are not checked, only that each row is there. The workloads
// themselves are tested in package bench; this test checks that the flags
// reach them and that wrong ones are usage errors.
var tiny = []string{"--steps", "3", "--runs", "2", "--clients", "2", "--workflows", "6",
	"--gather", "30", "--sleepers", "150", "--inflight", "20", "--long-steps", "0"}

func TestBench(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		pg      bool // with --postgres
		rows    []string
		notRows []string
		code    int
		stderr  string
	}{
		{
			name:    "memory, some workloads",
			args:    []string{"--memory", "--only", "c, e"},
			rows:    []string{"(c) Gather of 30 calls", "skipped: needs the SQLite store", "memory store"},
			notRows: []string{"(a)", "(b)", "(d)"},
		},
		{
			name:    "postgres beside memory",
			args:    []string{"--memory", "--only", "c"},
			pg:      true,
			rows:    []string{"memory store, then PostgreSQL at postgres://", "(c) Gather of 30 calls", " store "},
			notRows: []string{"(a)", "(b)", "(d)", "(e)"},
		},
		{
			name:    "full sync, long workflow beside",
			args:    []string{"--only", "a", "--sync", "full", "--long-steps", "12"},
			rows:    []string{"SQLite store (sync=full)", "sqlite (sync=full)", "(a) 12-step sequential workflow", "(a) p50 per await step, 12-step / 3-step workflow"},
			notRows: []string{"(b)", "sync=normal"},
		},
		{
			name:    "both transports by default",
			args:    []string{"--only", "a"},
			rows:    []string{"(inproc) and over signed loopback HTTP (http), round by round", " inproc ", " http ", "load "},
			notRows: []string{"(b)"},
		},
		{
			name:    "one transport",
			args:    []string{"--only", "b", "--transport", "http"},
			rows:    []string{"over signed loopback HTTP (--transport http)", " http "},
			notRows: []string{" inproc ", "(a)"},
		},
		{
			name:   "unknown transport",
			args:   []string{"--transport", "grpc"},
			code:   2,
			stderr: `--transport "grpc": want inproc (in process), http (signed loopback HTTP) or both`,
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
			for _, row := range tt.notRows {
				is.True(!strings.Contains(out, row)) // workload not picked
			}
		})
	}
}
