// Command any-race asks replicas of a service the same question. With
// flow.Any it takes the first success (a replica that is down and one that
// is slow do not hold it up); with flow.Race and flow.Timeout it gives up
// on replicas that are all too slow, and its continuation receives
// dispatch.ErrTimeout. Run it with
//
//	go run ./examples/any-race
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/dispatchkit/dispatch"
	"github.com/dispatchkit/dispatch/flow"
	_ "github.com/dispatchkit/dispatch/local" // local mode: a Dispatch server in-process when none is configured
)

// Replica describes one replica of the service, and how it behaves.
type Replica struct {
	Name  string
	Delay time.Duration // how long it takes to answer
	Down  bool          // it fails at once
}

// Query is the input of ask: a question for one replica.
type Query struct {
	Replica Replica
	Q       string
}

// Answer is what a replica answers.
type Answer struct {
	Replica string
	Text    string
}

// Request is the input of the workflow: Any over Replicas, then Race over
// Slow with a timeout.
type Request struct {
	Q        string
	Replicas []Replica
	Slow     []Replica
	Timeout  time.Duration // of the race; at least 1 s
}

// Report is the result of the workflow.
type Report struct {
	Any  string
	Race string
}

// out is where the program reports what happens; functions run
// concurrently, and a log.Logger serializes its writes.
var out = log.New(os.Stdout, "", 0)

// Ask asks one replica. A replica that is down fails with a permanent
// error, so that Dispatch does not retry it and Any hears of the failure.
var Ask = dispatch.Func("ask", func(ctx context.Context, q Query) (Answer, error) {
	r := q.Replica
	if r.Down {
		out.Printf("  %s: down\n", r.Name)
		return Answer{}, dispatch.Permanent(fmt.Errorf("replica %s is down", r.Name))
	}
	out.Printf("  %s: thinking for %s\n", r.Name, r.Delay)
	t := time.NewTimer(r.Delay)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		return Answer{}, ctx.Err()
	}
	out.Printf("  %s: answering after %s\n", r.Name, r.Delay)
	return Answer{Replica: r.Name, Text: fmt.Sprintf("42, says %s", r.Name)}, nil
})

// QueryAll is the workflow: first Any over all the replicas, then a Race over
// the slow ones, bounded by a timeout.
var QueryAll = dispatch.Flow("query", func(ctx *flow.Ctx, req Request) flow.Step[Report] {
	out.Printf("any: asking %s\n", names(req.Replicas))
	return flow.Any(Ask.Calls(queries(req.Q, req.Replicas)...), anyAnswered.With(req), flow.Timeout(10*time.Second))
})

// anyAnswered receives the first success, or an error joining every
// failure when no replica succeeded.
var anyAnswered = flow.HandleWith("query.any", func(ctx *flow.Ctx, req Request, a Answer, err error) flow.Step[Report] {
	var r Report
	if err != nil {
		r.Any = fmt.Sprintf("every replica failed: %v", err)
	} else {
		r.Any = fmt.Sprintf("first success from %s: %q", a.Replica, a.Text)
	}
	out.Printf("any: %s\n", r.Any)
	out.Printf("race: asking %s, for at most %s\n", names(req.Slow), req.Timeout)
	return flow.Race(Ask.Calls(queries(req.Q, req.Slow)...), raced.With(r), flow.Timeout(req.Timeout))
})

// raced receives the first result of the race, value or error; when the
// timeout passes first, an error that matches dispatch.ErrTimeout.
var raced = flow.HandleWith("query.race", func(ctx *flow.Ctx, r Report, a Answer, err error) flow.Step[Report] {
	switch {
	case errors.Is(err, dispatch.ErrTimeout):
		r.Race = fmt.Sprintf("timed out, no replica answered in time (errors.Is(err, dispatch.ErrTimeout), status %s)", dispatch.StatusOf(err))
	case err != nil:
		r.Race = fmt.Sprintf("first result is an error: %v", err)
	default:
		r.Race = fmt.Sprintf("first answer from %s: %q", a.Replica, a.Text)
	}
	out.Printf("race: %s\n", r.Race)
	return flow.Done(r)
})

func queries(q string, replicas []Replica) []Query {
	qs := make([]Query, len(replicas))
	for i, r := range replicas {
		qs[i] = Query{Replica: r, Q: q}
	}
	return qs
}

func names(replicas []Replica) string {
	s := ""
	for i, r := range replicas {
		if i > 0 {
			s += ", "
		}
		switch {
		case r.Down:
			s += r.Name + " (down)"
		default:
			s += fmt.Sprintf("%s (%s)", r.Name, r.Delay)
		}
	}
	return s
}

func main() {
	timeout := flag.Duration("timeout", time.Second, "how long the race waits (at least 1s)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	req := Request{
		Q: "what is the answer?",
		Replicas: []Replica{
			{Name: "eu", Down: true},
			{Name: "us", Delay: 2 * time.Second},
			{Name: "ap", Delay: 100 * time.Millisecond},
		},
		Slow: []Replica{
			{Name: "sa", Delay: 2 * time.Second},
			{Name: "af", Delay: 3 * time.Second},
		},
		Timeout: *timeout,
	}
	if err := run(ctx, os.Stdout, req); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// run serves the functions, dispatches the workflow and waits for its
// report. With no DISPATCH_API_URL, New starts a local Dispatch server in
// this process.
func run(ctx context.Context, w io.Writer, req Request, opts ...dispatch.Option) error {
	out.SetOutput(w)
	d, err := dispatch.New(opts...)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Start(); err != nil {
		return err
	}
	start := time.Now()
	r, err := QueryAll.DispatchAndWait(ctx, req)
	if err != nil {
		return err
	}
	out.Printf("done in %s\n  any:  %s\n  race: %s\n", time.Since(start).Round(10*time.Millisecond), r.Any, r.Race)
	out.Println("stopping: the replicas still running are cancelled (their results would be dropped anyway)")
	return nil
}
