package dispatch

import (
	"testing"

	"github.com/dispatchkit/dispatch/flow"
	"github.com/matryer/is"
)

// roottest.sum doubles each input concurrently (fan-out) and returns the
// doubles, in input order, followed by their sum (fan-in).
var (
	rtSum = Flow("roottest.sum", func(ctx *flow.Ctx, ns []int) flow.Step[[]int] {
		return Gather(rtDouble, ns, rtSummed)
	})
	rtSummed = flow.Then("roottest.sum.summed", func(ctx *flow.Ctx, doubles []int) flow.Step[[]int] {
		sum := 0
		for _, d := range doubles {
			sum += d
		}
		return flow.Done(append(doubles, sum))
	})
)

func TestCalls(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		inputs []int
	}{
		{"none", nil},
		{"one", []int{1}},
		{"several", []int{3, 1, 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			calls := rtDouble.Calls(tt.inputs...)
			is.Equal(len(calls), len(tt.inputs))
			for i, c := range calls {
				is.Equal(c.Function(), "roottest.double")
				is.Equal(c.Input(), tt.inputs[i]) // in input order
				is.Equal(c.Endpoint(), "")
			}
		})
	}
}
