// Command pipeline runs a three-step workflow, transform1 → transform2 →
// publish, where every await is a durability step: run it with
//
//	go run ./examples/pipeline
//
// and with DISPATCH_TRACE=1 to see the frames saved at each step.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/dispatchkit/dispatch"
	"github.com/dispatchkit/dispatch/flow"
	_ "github.com/dispatchkit/dispatch/local" // local mode: a Dispatch server in-process when none is configured
)

// out is where the functions report what they do.
var out io.Writer = os.Stdout

// Transform1 and Transform2 are plain functions: each runs once per
// attempt, on any instance of the service.
var Transform1 = dispatch.Func("transform1", func(ctx context.Context, msg string) (string, error) {
	res := strings.ToUpper(msg)
	fmt.Fprintf(out, "  transform1(%q) = %q\n", msg, res)
	return res, nil
})

var Transform2 = dispatch.Func("transform2", func(ctx context.Context, msg string) (string, error) {
	words := strings.Fields(msg)
	for i, j := 0, len(words)-1; i < j; i, j = i+1, j-1 {
		words[i], words[j] = words[j], words[i]
	}
	res := strings.Join(words, " ")
	fmt.Fprintf(out, "  transform2(%q) = %q\n", msg, res)
	return res, nil
})

// Receipt is what publishing returns: a struct, so it travels as CBOR.
type Receipt struct {
	Original  string
	Published string
	Length    int
}

var Publish = dispatch.Func("publish", func(ctx context.Context, msg string) (int, error) {
	fmt.Fprintf(out, "  publish(%q) = %d bytes\n", msg, len(msg))
	return len(msg), nil
})

// Pipeline is the workflow. Each continuation is registered by a stable
// name; published captures the original message explicitly.
var Pipeline = dispatch.Flow("pipeline", func(ctx *flow.Ctx, msg string) flow.Step[Receipt] {
	return dispatch.Await(Transform1, msg, transformed.With(msg))
})

var transformed = flow.ThenWith("pipeline.transformed", func(ctx *flow.Ctx, original, msg string) flow.Step[Receipt] {
	return dispatch.Await(Transform2, msg, transformedTwice.With(original))
})

var transformedTwice = flow.ThenWith("pipeline.transformed_twice", func(ctx *flow.Ctx, original, msg string) flow.Step[Receipt] {
	return dispatch.Await(Publish, msg, published.With(Receipt{Original: original, Published: msg}))
})

var published = flow.ThenWith("pipeline.published", func(ctx *flow.Ctx, r Receipt, n int) flow.Step[Receipt] {
	r.Length = n
	return flow.Done(r)
})

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	msg := "hello durable world"
	if len(os.Args) > 1 {
		msg = strings.Join(os.Args[1:], " ")
	}
	if err := run(ctx, os.Stdout, msg); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// run serves the functions, dispatches the pipeline and waits for its
// result. With no DISPATCH_API_URL, New starts a local Dispatch server in
// this process.
func run(ctx context.Context, w io.Writer, msg string, opts ...dispatch.Option) error {
	out = w
	d, err := dispatch.New(opts...)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Start(); err != nil {
		return err
	}
	start := time.Now()
	fmt.Fprintf(w, "dispatching pipeline(%q)\n", msg)
	r, err := Pipeline.DispatchAndWait(ctx, msg)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "pipeline done in %s: %q became %q (%d bytes)\n", time.Since(start).Round(time.Millisecond), r.Original, r.Published, r.Length)
	return nil
}
