package flow_test

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

// A two-step pipeline: each Await is a durability step.
var exampleShouted = flow.Then("example.shouted", func(ctx *flow.Ctx, s string) flow.Step[string] {
	return flow.Await(flow.NewCall[string]("exclaim", s), flow.Return[string]())
})

var exampleShout = dispatch.Flow("example.shout", func(ctx *flow.Ctx, s string) flow.Step[string] {
	return flow.Await(flow.NewCall[string]("upper", s), exampleShouted)
})

func ExampleAwait() {
	out, rep, err := flowtest.Run(context.Background(), exampleShout, "hello",
		flowtest.Mock("upper", func(s string) (string, error) { return strings.ToUpper(s), nil }),
		flowtest.Mock("exclaim", func(s string) (string, error) { return s + "!", nil }),
	)
	fmt.Println(out, err, rep.Resumes)
	// Output: HELLO! <nil> 2
}

// Fan-out, fan-in: results arrive in any order but come back in argument
// order; an environment carries the unit to the continuation.
var exampleTotal = flow.ThenWith("example.total", func(ctx *flow.Ctx, unit string, sizes []int) flow.Step[string] {
	sum := 0
	for _, n := range sizes {
		sum += n
	}
	return flow.Done(fmt.Sprintf("%v = %d %s", sizes, sum, unit))
})

var exampleLetters = dispatch.Flow("example.letters", func(ctx *flow.Ctx, words []string) flow.Step[string] {
	calls := make([]flow.Call[int], len(words))
	for i, w := range words {
		calls[i] = flow.NewCall[int]("len", w)
	}
	return flow.Gather(calls, exampleTotal.With("letters"))
})

func ExampleGather() {
	out, _, err := flowtest.Run(context.Background(), exampleLetters, []string{"a", "bb", "ccc"},
		flowtest.Mock("len", func(s string) (int, error) { return len(s), nil }),
		flowtest.Deliver(flowtest.Reversed),
	)
	fmt.Println(out, err)
	// Output: [1 2 3] = 6 letters <nil>
}

// First success among replicas, with a timeout built from the poll's wait.
var exampleFastest = flow.Handle("example.fastest", func(ctx *flow.Ctx, s string, err error) flow.Step[string] {
	if errors.Is(err, dispatch.ErrTimeout) {
		return flow.Done("no replica answered in time")
	}
	if err != nil {
		return flow.Fail[string](err)
	}
	return flow.Done("answer from " + s)
})

var exampleQuery = dispatch.Flow("example.query", func(ctx *flow.Ctx, q string) flow.Step[string] {
	calls := []flow.Call[string]{flow.NewCall[string]("eu", q), flow.NewCall[string]("us", q)}
	return flow.Any(calls, exampleFastest, flow.Timeout(5*time.Second))
})

func ExampleAny() {
	eu := flowtest.Mock("eu", func(string) (string, error) { return "", dispatch.Permanent(errors.New("eu is down")) })
	us := flowtest.Mock("us", func(string) (string, error) { return "us", nil })

	out, _, _ := flowtest.Run(context.Background(), exampleQuery, "q", eu, us)
	fmt.Println(out)
	out, _, _ = flowtest.Run(context.Background(), exampleQuery, "q", eu, flowtest.Hang("us"))
	fmt.Println(out)
	// Output:
	// answer from us
	// no replica answered in time
}
