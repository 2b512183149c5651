package flowtest_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/dispatchkit/dispatch"
	"github.com/dispatchkit/dispatch/flow"
	"github.com/dispatchkit/dispatch/flow/flowtest"
)

// A workflow as a program registers it: what dispatch.Flow returns is what
// flowtest.Run takes.
var Pipeline = dispatch.Flow("example.pipeline", func(ctx *flow.Ctx, msg string) flow.Step[string] {
	return flow.Await(flow.NewCall[string]("transform1", msg), pipelineTransformed)
})

var pipelineTransformed = flow.Then("example.pipeline.transformed", func(ctx *flow.Ctx, msg string) flow.Step[string] {
	return flow.Await(flow.NewCall[string]("transform2", msg), flow.Return[string]())
})

// Run runs the workflow with mocks, as the server would: transform2 fails
// its first attempt with a temporary error, which the server retries after
// a back-off (100 ms on the virtual clock), so the workflow sees only the
// success.
func Example() {
	out, rep, err := flowtest.Run(context.Background(), Pipeline, "hello",
		flowtest.Mock("transform1", func(s string) (string, error) { return strings.ToUpper(s), nil }),
		flowtest.MockAttempt("transform2", func(s string, attempt int) (string, error) {
			if attempt == 1 {
				return "", dispatch.Temporary(errors.New("not ready"))
			}
			return s + "!", nil
		}),
	)
	fmt.Println(out, err)
	fmt.Println("resumes:", rep.Resumes, "retries:", rep.Retries, "virtual time:", rep.Slept)
	// Output:
	// HELLO! <nil>
	// resumes: 2 retries: 1 virtual time: 100ms
}

// Quote asks for a quote and gives up after an hour.
var Quote = dispatch.Flow("example.quote", func(ctx *flow.Ctx, item string) flow.Step[string] {
	return flow.Await(flow.NewCall[string]("quote", item), quoted, flow.Timeout(time.Hour))
})

var quoted = flow.Handle("example.quoted", func(ctx *flow.Ctx, price string, err error) flow.Step[string] {
	if errors.Is(err, dispatch.ErrTimeout) {
		return flow.Done(fmt.Sprintf("no quote at %s", ctx.Now().Format(time.TimeOnly)))
	}
	if err != nil {
		return flow.Fail[string](err)
	}
	return flow.Done(fmt.Sprintf("%s at %s", price, ctx.Now().Format(time.TimeOnly)))
})

// A one-hour timeout, tested in milliseconds: the latency of the call and
// the timeout pass on the virtual clock, which ctx.Now follows.
func ExampleLatency() {
	quote := flowtest.Mock("quote", func(item string) (string, error) { return "$12", nil })
	for _, took := range []time.Duration{20 * time.Minute, 3 * time.Hour} {
		out, _, err := flowtest.Run(context.Background(), Quote, "lamp", quote,
			flowtest.Latency("quote", func(string) time.Duration { return took }),
			flowtest.Expiration(4*time.Hour), // the workflow's own, 1 hour by default
		)
		fmt.Println(out, err)
	}
	// Output:
	// $12 at 00:20:00 <nil>
	// no quote at 01:00:00 <nil>
}
