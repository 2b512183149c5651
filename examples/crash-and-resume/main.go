// Command crash-and-resume runs a workflow of ten slow steps, with a
// durable sleep halfway, that survives the death of the program: run it,
// press Ctrl-C (or kill -9 it) halfway, run it again, and it finishes the
// same workflow where it was. Run it with
//
//	go run ./examples/crash-and-resume
//
// The local Dispatch server keeps its calls in the state directory
// (~/.local/state/dispatch/crash-and-resume, or $DISPATCH_STATE_DIR) and
// recovers the calls in flight when the program starts again, moving them
// to the endpoint of the new run, on a new port. The program keeps a marker
// file there, run.json, naming the workflow in flight: it dispatches a new
// workflow only when there is none.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/dispatchkit/dispatch"
	"github.com/dispatchkit/dispatch/flow"
	_ "github.com/dispatchkit/dispatch/local" // local mode: a Dispatch server in-process when none is configured
	"github.com/dispatchkit/dispatch/serde"
	"github.com/rs/zerolog"
)

// program names the program's state directory.
const program = "crash-and-resume"

// Job is the input of the workflow. It is recorded with the call, so a
// workflow resumed by a later run keeps the settings of the run that
// dispatched it.
type Job struct {
	Steps    int
	StepTime time.Duration
}

// Progress is what the workflow carries from step to step, in the
// environment of its continuations: it is saved with the workflow's state
// at every step.
type Progress struct {
	Job  Job
	ID   string // the workflow's dispatch id
	Done []int  // steps done, in order
}

// StepInput is the input of one step.
type StepInput struct {
	N, Of int
	Took  time.Duration
}

// Result is what the workflow returns.
type Result struct {
	ID       string
	Steps    []int
	Finished time.Time
}

// Marker is the content of run.json: the workflow in flight.
type Marker struct {
	ID      string
	Started time.Time
}

// out is where the program reports progress; functions run concurrently,
// and a log.Logger serializes its writes.
var out = log.New(os.Stdout, "", 0)

// Step is one slow step of the workflow. If the program dies while a step
// runs, the step runs again after the restart: steps run at least once.
var Step = dispatch.Func("step", func(ctx context.Context, s StepInput) (int, error) {
	out.Printf("step %d/%d running\n", s.N, s.Of)
	t := time.NewTimer(s.Took)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	out.Printf("step %d/%d done\n", s.N, s.Of)
	return s.N, nil
})

// Workflow runs Steps steps, one after the other, sleeping durably for a
// second halfway.
var Workflow = dispatch.Flow("crash_and_resume", func(ctx *flow.Ctx, job Job) flow.Step[Result] {
	p := Progress{Job: job, ID: ctx.Info().DispatchID}
	return dispatch.Await(Step, StepInput{N: 1, Of: job.Steps, Took: job.StepTime}, stepped.With(p))
})

// stepped runs after each step; it refers to itself, so it is assigned in
// init.
var stepped flow.ContWith[Progress, int, Result]

var slept = flow.ThenWith("crash_and_resume.slept", func(ctx *flow.Ctx, p Progress, _ struct{}) flow.Step[Result] {
	out.Println("woke up")
	return next(ctx, p)
})

func init() {
	stepped = flow.ThenWith("crash_and_resume.stepped", func(ctx *flow.Ctx, p Progress, n int) flow.Step[Result] {
		p.Done = append(p.Done, n)
		out.Printf("progress: %d/%d steps done\n", len(p.Done), p.Job.Steps)
		if len(p.Done) == p.Job.Steps/2 {
			out.Println("halfway: sleeping for a second, durably")
			return flow.Sleep(time.Second, slept.With(p))
		}
		return next(ctx, p)
	})
}

// next runs the next step, or finishes.
func next(ctx *flow.Ctx, p Progress) flow.Step[Result] {
	if len(p.Done) < p.Job.Steps {
		in := StepInput{N: len(p.Done) + 1, Of: p.Job.Steps, Took: p.Job.StepTime}
		return dispatch.Await(Step, in, stepped.With(p))
	}
	out.Printf("all %d steps done\n", p.Job.Steps)
	return flow.Done(Result{ID: p.ID, Steps: p.Done, Finished: ctx.Now()})
}

func main() {
	steps := flag.Int("steps", 10, "number of steps of a new workflow")
	stepTime := flag.Duration("step", time.Second, "how long each step of a new workflow takes")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	dir, err := dispatch.StateDir(program)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// Info logs show the local server recovering calls.
	opts := []dispatch.Option{dispatch.WithZerolog(zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr, NoColor: true, TimeFormat: time.TimeOnly}).
		Level(zerolog.InfoLevel).With().Timestamp().Logger())}
	if os.Getenv("DISPATCH_API_URL") == "" && os.Getenv("DISPATCH_API_KEY") == "" {
		// Local mode, in the state directory named after the program
		// rather than after the executable, so that run.json and the
		// server's calls are always side by side.
		opts = append(opts, dispatch.WithLocalServer(dir))
	}
	if err := run(ctx, os.Stdout, dir, Job{Steps: *steps, StepTime: *stepTime}, opts...); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// run waits for the workflow of a previous run if run.json in dir names
// one, and otherwise dispatches a new one and waits for it. If ctx ends
// first, the workflow stays in flight, to be finished by the next run.
func run(ctx context.Context, w io.Writer, dir string, job Job, opts ...dispatch.Option) error {
	out.SetOutput(w)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	markerFile := filepath.Join(dir, "run.json")
	var m Marker
	err := readJSON(markerFile, &m)
	resuming := err == nil
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s: %w (remove it to start afresh)", markerFile, err)
	}

	// Each run serves the endpoint on a new port (local mode picks a free
	// one): when it starts, the local server moves the calls in flight
	// from the previous run's endpoint to this one ("moved N calls from
	// the previous endpoint" in its log).
	d, err := dispatch.New(opts...)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Start(); err != nil {
		return err
	}

	if resuming {
		out.Printf("resuming workflow %s, dispatched by a previous run at %s\n", m.ID, m.Started.Format(time.TimeOnly))
	} else {
		id, err := Workflow.Dispatch(ctx, job)
		if err != nil {
			return err
		}
		m = Marker{ID: id, Started: time.Now()}
		if err := writeJSON(markerFile, m); err != nil {
			return err
		}
		out.Printf("dispatched workflow %s: %d steps of %s\n", id, job.Steps, job.StepTime)
		out.Println("press Ctrl-C (or kill -9 this program) halfway, then run it again")
	}

	// Wait finds the workflow by its id, whichever run dispatched it; if
	// it finished before a crash, its result is in the store already.
	res, err := d.Wait(ctx, m.ID)
	switch {
	case ctx.Err() != nil:
		out.Printf("interrupted: workflow %s stays in flight; run the program again to finish it\n", m.ID)
		return nil
	case errors.Is(err, dispatch.ErrUnknownCall):
		return fmt.Errorf("%w: the server's state was reset; remove %s to start afresh", err, markerFile)
	case err != nil:
		os.Remove(markerFile)
		return fmt.Errorf("workflow %s failed: %w", m.ID, err)
	}
	var r Result
	if err := serde.Unmarshal(res.GetOutput(), &r); err != nil {
		return err
	}
	out.Printf("workflow %s finished at %s: steps %v\n", r.ID, r.Finished.Format(time.TimeOnly), r.Steps)
	// The next run starts a new workflow.
	return os.Remove(markerFile)
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// writeJSON writes v to path atomically.
func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
