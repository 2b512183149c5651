package scheduler

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	sdkv1 "buf.build/gen/go/stealthrocket/dispatch-proto/protocolbuffers/go/dispatch/sdk/v1"
	"github.com/matryer/is"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/dispatchkit/dispatch/internal/store"
	"github.com/dispatchkit/dispatch/internal/store/memstore"
)

// Every id an engine of partition p makes is of p, a child's and a
// grandchild's as much as a root's, and its roots' ids still sort by
// creation: a replica given only an id (the
// Result or the Cancel of a child started early, which has no row yet)
// tells from it which partition, so which replica, runs the call. The
// workflow gathers two nested workflows and a leaf; each nested one
// gathers two leaves.
func TestPartitionIDsOfChildren(t *testing.T) {
	tests := []partitionCase{
		{"one partition", 1, 1},
		{"the first of 12", 1, 12},
		{"a middle one", 7, 12},
		{"the last of 12", 12, 12},
		{"of 5", 4, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			const ep = "http://in.process"
			var mu sync.Mutex
			ran := map[string]string{} // dispatch id -> function, of every run
			exit := func(out string) *sdkv1.RunResponse {
				return &sdkv1.RunResponse{Status: sdkv1.Status_STATUS_OK, Directive: &sdkv1.RunResponse_Exit{Exit: &sdkv1.Exit{
					Result: &sdkv1.CallResult{Output: str(out)}}}}
			}
			gather := func(calls ...*sdkv1.Call) *sdkv1.RunResponse {
				n := int32(len(calls))
				return &sdkv1.RunResponse{Status: sdkv1.Status_STATUS_OK, Directive: &sdkv1.RunResponse_Poll{Poll: &sdkv1.Poll{
					State:      &sdkv1.Poll_CoroutineState{CoroutineState: []byte("s")},
					MinResults: n, MaxResults: n, MaxWait: durationpb.New(time.Hour), Calls: calls}}}
			}
			run := func(_ context.Context, req *sdkv1.RunRequest) (*sdkv1.RunResponse, error) {
				mu.Lock()
				ran[req.GetDispatchId()] = req.GetFunction()
				mu.Unlock()
				switch {
				case req.GetFunction() == "leaf":
					return exit("l"), nil
				case req.GetPollResult() != nil:
					return exit(req.GetFunction()), nil
				case req.GetFunction() == "nested":
					return gather(&sdkv1.Call{Function: "leaf", Endpoint: ep}, &sdkv1.Call{Function: "leaf", Endpoint: ep}), nil
				}
				return gather(&sdkv1.Call{Function: "nested", Endpoint: ep}, &sdkv1.Call{Function: "nested", Endpoint: ep},
					&sdkv1.Call{Function: "leaf", Endpoint: ep}), nil
			}
			st := memstore.New()
			e, err := New(Config{Store: st, Partitions: tt.of, Partition: tt.partition, Local: &LocalEndpoint{URL: ep, Run: run}})
			is.NoErr(err)
			is.NoErr(e.Start(context.Background()))
			defer e.Close()
			const roots = 10
			calls := make([]*sdkv1.Call, roots)
			for i := range calls {
				calls[i] = &sdkv1.Call{Function: "root", Endpoint: ep}
			}
			ids, err := e.Dispatch(context.Background(), calls)
			is.NoErr(err)
			prev := ""
			for _, id := range ids {
				is.Equal(store.PartitionOf(id, tt.of), tt.partition)
				is.True(id > prev) // still sorted by creation
				prev = id
			}
			for _, id := range ids {
				w, err := e.Watch(id)
				is.NoErr(err)
				if w != nil {
					<-w.Done()
					w.Stop()
				}
			}
			const perRoot = 1 + 2 + 1 + 2*2 // the root, two nested, a leaf, the nested ones' leaves
			rows, err := st.ListCalls(context.Background(), store.ListOptions{Limit: 10 * roots * perRoot})
			is.NoErr(err)
			is.Equal(len(rows), roots*perRoot)
			children := 0
			for _, r := range rows {
				is.Equal(r.State, store.Done)
				if p := store.PartitionOf(r.ID, tt.of); p != tt.partition {
					t.Errorf("call %s (parent %q) is in partition %d of %d, want %d", r.ID, r.ParentID, p, tt.of, tt.partition)
				}
				is.Equal(store.PartitionOf(r.RootID, tt.of), tt.partition)
				if r.ParentID != "" {
					children++
				}
			}
			is.Equal(children, roots*(perRoot-1))
			mu.Lock()
			defer mu.Unlock()
			is.Equal(len(ran), roots*perRoot) // every call ran, under the id of its row
			for id, f := range ran {
				if p := store.PartitionOf(id, tt.of); p != tt.partition {
					t.Errorf("run of %s %s is in partition %d of %d, want %d", f, id, p, tt.of, tt.partition)
				}
			}
		})
	}
}

// The cost of drawing an id in a partition: n tries on average, against
// one for n=0 (no partition, a single-owner store).
func BenchmarkIDNextIn(b *testing.B) {
	for _, n := range []int{0, 12} {
		b.Run(fmt.Sprintf("partitions=%d", n), func(b *testing.B) {
			var g idGen
			now := time.Now()
			p := min(n, 5)
			for b.Loop() {
				_ = g.nextIn(now, p, n)
			}
		})
	}
}
