package flow_test

import (
	"context"
	"fmt"

	"github.com/dispatchkit/dispatch"
	"github.com/dispatchkit/dispatch/flow"
	"github.com/dispatchkit/dispatch/flow/flowtest"
)

// Page is a page of a paginated API: its items, and the number of the next
// page, 0 after the last.
type Page struct {
	Items []int
	Next  int
}

// Tally is the environment of the loop: how many pages it may still fetch
// and the total so far. It stays this size whatever the number of pages:
// the state of a loop does not grow with its iterations.
type Tally struct {
	Left  int
	Total int
}

// SumPages sums the items of every page of fetch_page, fetching at most
// maxPages pages: a durable loop, each iteration an await.
var SumPages = dispatch.Flow("loop.sum_pages", func(ctx *flow.Ctx, maxPages int) flow.Step[int] {
	return flow.Await(flow.NewCall[Page]("fetch_page", 1), pageFetched.With(Tally{Left: maxPages}))
})

// pageFetched awaits itself: a continuation that refers to itself is
// assigned in init, since Go rejects a package-level variable whose
// initializer refers to it. Its bound (Left) keeps a loop that never ends
// from running until its expiration.
var pageFetched flow.ContWith[Tally, Page, int]

func init() {
	pageFetched = flow.ThenWith("loop.page_fetched", func(ctx *flow.Ctx, t Tally, p Page) flow.Step[int] {
		for _, n := range p.Items {
			t.Total += n
		}
		t.Left--
		switch {
		case p.Next == 0:
			return flow.Done(t.Total)
		case t.Left == 0:
			return flow.Fail[int](dispatch.Permanent(fmt.Errorf("more pages than allowed (page %d next, total so far %d)", p.Next, t.Total)))
		}
		return flow.Await(flow.NewCall[Page]("fetch_page", p.Next), pageFetched.With(t))
	})
}

// fetchPages serves pages 1 to last of the examples: page n holds n and
// n*10.
func fetchPages(last int) flowtest.Option {
	return flowtest.Mock("fetch_page", func(n int) (Page, error) {
		p := Page{Items: []int{n, n * 10}}
		if n < last {
			p.Next = n + 1
		}
		return p, nil
	})
}

// A durable loop: a continuation that awaits itself, with a bound.
func ExampleThenWith_loop() {
	total, rep, err := flowtest.Run(context.Background(), SumPages, 10, fetchPages(4))
	fmt.Println(total, err, "pages:", rep.Calls, "largest state:", rep.MaxState, "bytes")
	_, _, err = flowtest.Run(context.Background(), SumPages, 3, fetchPages(4))
	fmt.Println(err)
	// Output:
	// 110 <nil> pages: 4 largest state: 54 bytes
	// PERMANENT_ERROR: more pages than allowed (page 4 next, total so far 66)
}
