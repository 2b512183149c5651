package trace_test

import (
	"os"

	"github.com/dispatchkit/dispatch/trace"
)

func ExampleDump() {
	type Order struct {
		ID    string
		Items []string
	}
	trace.Dump(os.Stdout, trace.Snapshot{
		Function:   "pipeline",
		DispatchID: "7f3a9c2e",
		Event:      "suspend",
		Frames: []trace.Frame{
			{
				Name:   "pipeline.transformed",
				Env:    Order{ID: "o-1", Items: []string{"a", "b"}},
				Detail: "await all: 3 of 5 results",
			},
			{Name: "pipeline", Env: map[string]int{"retries": 2}},
		},
		Pending: []trace.Pending{
			{CorrelationID: 1, Function: "transform2", Input: "hello"},
			{CorrelationID: 2, Function: "notify", Endpoint: "https://other.example.com", Input: Order{ID: "o-1"}},
		},
		Queued: 3,
	})
	// Output:
	// dispatch trace: suspend pipeline (id 7f3a9c2e)
	//   frames, top of stack first:
	//     0  pipeline.transformed
	//        env:    Order{ID: "o-1", Items: ["a", "b"]}
	//        detail: await all: 3 of 5 results
	//     1  pipeline
	//        env:    {"retries": 2}
	//   pending calls: 2
	//     #1  transform2("hello")
	//     #2  notify(Order{ID: "o-1", Items: nil})  endpoint: https://other.example.com
	//   queued calls (sent as results come in): 3
}

func ExampleFormat() {
	type Line struct {
		SKU string
		Qty int
	}
	type Cart struct {
		Lines  []Line
		Tags   map[string]int
		Notify chan string
	}
	os.Stdout.WriteString(trace.Format(&Cart{
		Lines:  []Line{{SKU: "sku-1", Qty: 2}},
		Tags:   map[string]int{"vip": 1, "eu": 2},
		Notify: make(chan string),
	}) + "\n")
	// Output:
	// &Cart{Lines: [Line{SKU: "sku-1", Qty: 2}], Tags: {"eu": 2, "vip": 1}, Notify: <chan string>}
}
