package trace_test

import (
	"io"
	"testing"
	"time"

	"github.com/dispatchkit/dispatch/trace"
)

func BenchmarkFormat(b *testing.B) {
	v := Cart{
		Owner: &Customer{Name: "ann"},
		Lines: []Line{{"sku-1", 2, 9.5}, {"sku-2", 1, 20}},
		Tags:  map[string]int{"b": 2, "a": 1},
		At:    time.Date(2024, 5, 1, 12, 30, 0, 0, time.UTC),
		TTL:   time.Second,
	}
	b.ReportAllocs()
	for b.Loop() {
		trace.Format(v)
	}
}

func BenchmarkDump(b *testing.B) {
	s := trace.Snapshot{
		Function: "pipeline", DispatchID: "7f3a9c2e", Event: "suspend",
		Frames:  []trace.Frame{{Name: "pipeline.transformed", Env: Order{ID: "o-1", Items: []string{"a", "b"}}, Detail: "await all: 3 of 5 results"}},
		Pending: []trace.Pending{{CorrelationID: 1, Function: "transform2", Input: "hello"}},
	}
	b.ReportAllocs()
	for b.Loop() {
		trace.Dump(io.Discard, s)
	}
}
