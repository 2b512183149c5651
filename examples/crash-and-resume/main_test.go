package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dispatchkit/dispatch"
	"github.com/dispatchkit/dispatch/flow/flowtest"
	"github.com/matryer/is"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const allSteps = "steps [1 2 3 4 5 6 7 8 9 10]"

// TestInProcess runs the workflow with run, stopping the first run (as
// Ctrl-C does) once stopAt is printed, if set.
func TestInProcess(t *testing.T) {
	tests := []struct {
		name   string
		stopAt string
	}{
		{"uninterrupted", ""},
		{"stopped at step 3", "step 3/10 done\n"},
		{"stopped in the sleep", "halfway: sleeping"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			dir := t.TempDir()
			job := Job{Steps: 10, StepTime: 100 * time.Millisecond}

			w := newWatcher()
			runCtx, stop := context.WithCancel(ctx)
			defer stop()
			if tt.stopAt != "" {
				ch := w.waitFor(tt.stopAt)
				go func() {
					select {
					case <-ch:
						stop()
					case <-runCtx.Done():
					}
				}()
			}
			is.NoErr(run(runCtx, w, dir, job, dispatch.WithLocalServer(dir)))
			first := w.String()
			is.True(strings.Contains(first, "dispatched workflow "))
			if tt.stopAt == "" {
				is.True(strings.Contains(first, allSteps))
				return
			}
			is.True(strings.Contains(first, "stays in flight; run the program again to finish it"))
			is.True(!strings.Contains(first, "step 10/10 done"))

			var second bytes.Buffer
			is.NoErr(run(ctx, &second, dir, job, dispatch.WithLocalServer(dir)))
			is.True(strings.Contains(second.String(), "resuming workflow "))
			is.True(strings.Contains(second.String(), allSteps))
			checkSteps(t, first+second.String())

			// The next run starts a new workflow.
			_, err := os.Stat(filepath.Join(dir, "run.json"))
			is.True(os.IsNotExist(err))
		})
	}
}

// TestKill builds the program, runs it, kills it with SIGKILL once killAt
// is printed, and runs it again.
func TestKill(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the program")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("no go command to build the program: %v", err) // a kill -9 test that cannot run must not pass
	}
	bin := filepath.Join(t.TempDir(), program)
	if out, err := exec.Command(goTool, "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	tests := []struct {
		name   string
		killAt string
	}{
		{"killed in step 4", "step 4/10 running"},
		{"killed in the sleep", "halfway: sleeping"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			env := []string{"DISPATCH_STATE_DIR=" + t.TempDir()}
			for _, kv := range os.Environ() {
				if !strings.HasPrefix(kv, "DISPATCH_") {
					env = append(env, kv)
				}
			}

			cmd := exec.CommandContext(ctx, bin, "-step", "200ms")
			cmd.Env = env
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			stdout, err := cmd.StdoutPipe()
			is.NoErr(err)
			is.NoErr(cmd.Start())
			var first strings.Builder
			killed := false
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				fmt.Fprintln(&first, sc.Text())
				if !killed && strings.Contains(sc.Text(), tt.killAt) {
					is.NoErr(cmd.Process.Kill()) // SIGKILL: no clean-up at all
					killed = true
				}
			}
			_ = cmd.Wait()
			if !killed {
				t.Fatalf("the first run ended without printing %q:\n%s\n%s", tt.killAt, first.String(), stderr.String())
			}
			is.True(!strings.Contains(first.String(), "finished"))

			cmd = exec.CommandContext(ctx, bin, "-step", "200ms")
			cmd.Env = env
			stderr.Reset()
			cmd.Stderr = &stderr
			second, err := cmd.Output()
			if err != nil {
				t.Fatalf("second run: %v\n%s\n%s", err, second, stderr.String())
			}
			is.True(strings.Contains(string(second), "resuming workflow "))
			is.True(strings.Contains(string(second), allSteps))
			is.True(strings.Contains(stderr.String(), "recovered calls in flight"))
			// The second run serves the endpoint on another port: the
			// server moved the calls in flight there.
			is.True(strings.Contains(stderr.String(), "calls from the previous endpoint http://127.0.0.1:"))
			checkSteps(t, first.String()+string(second))
		})
	}
}

// TestCrashEverywhere runs the workflow without a server, its steps
// mocked (each taking StepTime on the virtual clock), once uninterrupted
// and once crashed at each await (each step, and the sleep): every run
// must finish with each step once, in order.
func TestCrashEverywhere(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		job  Job
		want Result
	}{
		{"four steps", Job{Steps: 4, StepTime: time.Minute}, Result{ID: "test-1", Steps: []int{1, 2, 3, 4}, Finished: start.Add(4*time.Minute + time.Second)}},
		{"one step", Job{Steps: 1, StepTime: time.Second}, Result{ID: "test-1", Steps: []int{1}, Finished: start.Add(time.Second)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			out.SetOutput(io.Discard)
			r, rep, err := flowtest.CrashEverywhere(t, Workflow, tt.job,
				flowtest.Mock("step", func(s StepInput) (int, error) { return s.N, nil }),
				flowtest.Latency("step", func(s StepInput) time.Duration { return s.Took }),
				flowtest.Clock(start),
			)
			is.NoErr(err)
			is.Equal(r.ID, tt.want.ID)
			is.Equal(r.Steps, tt.want.Steps)
			is.True(r.Finished.Equal(tt.want.Finished)) // steps and the sleep on the virtual clock
			is.Equal(rep.Calls, tt.job.Steps)
		})
	}
}

// checkSteps checks that every step ran to completion at least once over
// the runs, and that the workflow saw each exactly once (allSteps).
func checkSteps(t *testing.T, output string) {
	t.Helper()
	for n := 1; n <= 10; n++ {
		if !strings.Contains(output, fmt.Sprintf("step %d/10 done\n", n)) {
			t.Errorf("step %d never finished:\n%s", n, output)
		}
	}
}

// watcher is an io.Writer that signals when what was written contains a
// string.
type watcher struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	waits map[string]chan struct{}
}

func newWatcher() *watcher { return &watcher{waits: map[string]chan struct{}{}} }

func (w *watcher) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n, err := w.buf.Write(p)
	for s, ch := range w.waits {
		if strings.Contains(w.buf.String(), s) {
			close(ch)
			delete(w.waits, s)
		}
	}
	return n, err
}

// waitFor returns a channel closed once the output contains s.
func (w *watcher) waitFor(s string) <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	ch := make(chan struct{})
	if strings.Contains(w.buf.String(), s) {
		close(ch)
		return ch
	}
	w.waits[s] = ch
	return ch
}

func (w *watcher) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}
