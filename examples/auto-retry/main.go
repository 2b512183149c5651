// Command auto-retry runs a function that fails with a temporary error a
// few times before it succeeds: Dispatch retries it, with exponential
// back-off, until it does. Run it with
//
//	go run ./examples/auto-retry
//
// and with -failures=5 for more attempts, or -permanent to see a permanent
// error, which Dispatch does not retry.
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
	"sync"
	"syscall"
	"time"

	"github.com/dispatchkit/dispatch"
	_ "github.com/dispatchkit/dispatch/local" // local mode: a Dispatch server in-process when none is configured
)

// Job is the input of the flaky function: a struct, so it travels as CBOR.
type Job struct {
	Name      string
	Failures  int  // attempts that fail before one succeeds
	Permanent bool // fail with a permanent error instead
}

// out is where the function reports its attempts; a log.Logger is safe
// for concurrent use, as it must be: Dispatch may run calls concurrently.
var out = log.New(os.Stdout, "", 0)

// attempts counts the attempts per job. It lives in this process only: a
// real function would keep such state in a database, or better, be
// idempotent.
var attempts = struct {
	sync.Mutex
	n    map[string]int
	last map[string]time.Time
}{n: map[string]int{}, last: map[string]time.Time{}}

// attempt records one more attempt of job and returns its number and the
// time since the previous attempt.
func attempt(job string) (int, time.Duration) {
	attempts.Lock()
	defer attempts.Unlock()
	now := time.Now()
	var since time.Duration
	if t, ok := attempts.last[job]; ok {
		since = now.Sub(t)
	}
	attempts.n[job]++
	attempts.last[job] = now
	return attempts.n[job], since
}

// Flaky fails its first job.Failures attempts with a temporary error:
// dispatch.Temporary tells Dispatch to retry the call. With job.Permanent,
// it fails with dispatch.Permanent instead, and Dispatch gives up at once.
var Flaky = dispatch.Func("flaky", func(ctx context.Context, job Job) (string, error) {
	n, since := attempt(job.Name)
	after := ""
	if n > 1 {
		after = fmt.Sprintf(" (%s after the previous one)", since.Round(time.Millisecond))
	}
	switch {
	case job.Permanent:
		out.Printf("attempt %d%s: permanent error, Dispatch will not retry\n", n, after)
		return "", dispatch.Permanent(fmt.Errorf("flaky: %s is misconfigured", job.Name))
	case n <= job.Failures:
		out.Printf("attempt %d%s: temporary error, Dispatch will retry\n", n, after)
		return "", dispatch.Temporary(fmt.Errorf("flaky: %s is not ready yet (attempt %d)", job.Name, n))
	}
	out.Printf("attempt %d%s: success\n", n, after)
	return fmt.Sprintf("%s done after %d attempts", job.Name, n), nil
})

func main() {
	failures := flag.Int("failures", 3, "number of attempts that fail with a temporary error")
	permanent := flag.Bool("permanent", false, "fail with a permanent error, which Dispatch does not retry")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Stdout, Job{Name: "job-1", Failures: *failures, Permanent: *permanent}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// run serves the function, dispatches one call of it and waits for its
// outcome. With no DISPATCH_API_URL, New starts a local Dispatch server in
// this process. A call that fails for good is reported, not returned: it
// is an outcome this example shows.
func run(ctx context.Context, w io.Writer, job Job, opts ...dispatch.Option) error {
	out.SetOutput(w)
	attempts.Lock()
	delete(attempts.n, job.Name)
	delete(attempts.last, job.Name)
	attempts.Unlock()

	d, err := dispatch.New(opts...)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Start(); err != nil {
		return err
	}
	start := time.Now()
	if job.Permanent {
		out.Printf("dispatching flaky(%q), which fails with a permanent error\n", job.Name)
	} else {
		out.Printf("dispatching flaky(%q), which fails %d times first\n", job.Name, job.Failures)
	}
	res, err := Flaky.DispatchAndWait(ctx, job)
	elapsed := time.Since(start).Round(time.Millisecond)
	var derr *dispatch.Error
	switch {
	case errors.As(err, &derr):
		out.Printf("flaky failed after %s: %v\n", elapsed, derr)
		return nil
	case err != nil:
		return err
	}
	out.Printf("result after %s: %s\n", elapsed, res)
	return nil
}
