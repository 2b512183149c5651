package scheduler

import (
	"context"
	"strings"
	"testing"
	"time"

	sdkv1 "buf.build/gen/go/stealthrocket/dispatch-proto/protocolbuffers/go/dispatch/sdk/v1"
	"github.com/matryer/is"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/dispatchkit/dispatch/internal/store"
	"github.com/dispatchkit/dispatch/internal/store/memstore"
)

// partitionCase is a case of the partition tests: partition of of.
type partitionCase struct {
	name          string
	partition, of int
}

// An engine that owns one partition of a shared store gives its root calls
// ids of that partition, and their children the root's: the whole tree is
// in the partition whose store writes and recovers it.
func TestPartitionIDs(t *testing.T) {
	tests := []partitionCase{
		{"one partition", 1, 1},
		{"the first of 12", 1, 12},
		{"a middle one", 5, 12},
		{"the last of 12", 12, 12},
		{"of 7", 3, 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			st := memstore.New()
			const ep = "http://in.process"
			run := func(_ context.Context, req *sdkv1.RunRequest) (*sdkv1.RunResponse, error) {
				switch {
				case req.GetFunction() == "child":
					return &sdkv1.RunResponse{Status: sdkv1.Status_STATUS_OK, Directive: &sdkv1.RunResponse_Exit{Exit: &sdkv1.Exit{
						Result: &sdkv1.CallResult{Output: str("c")}}}}, nil
				case req.GetPollResult() == nil: // the parent's first run: two children
					return &sdkv1.RunResponse{Status: sdkv1.Status_STATUS_OK, Directive: &sdkv1.RunResponse_Poll{Poll: &sdkv1.Poll{
						State: &sdkv1.Poll_CoroutineState{CoroutineState: []byte("s")}, MinResults: 2, MaxResults: 2, MaxWait: durationpb.New(time.Hour),
						Calls: []*sdkv1.Call{{Function: "child", Endpoint: ep}, {Function: "child", Endpoint: ep}}}}}, nil
				}
				return &sdkv1.RunResponse{Status: sdkv1.Status_STATUS_OK, Directive: &sdkv1.RunResponse_Exit{Exit: &sdkv1.Exit{
					Result: &sdkv1.CallResult{Output: str("p")}}}}, nil
			}
			e, err := New(Config{Store: st, Partitions: tt.of, Partition: tt.partition, Local: &LocalEndpoint{URL: ep, Run: run}})
			is.NoErr(err)
			is.NoErr(e.Start(context.Background()))
			defer e.Close()
			const n = 40
			calls := make([]*sdkv1.Call, n)
			for i := range calls {
				calls[i] = &sdkv1.Call{Function: "parent", Endpoint: ep}
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
			rows, err := st.ListCalls(context.Background(), store.ListOptions{Limit: 10 * n})
			is.NoErr(err)
			is.Equal(len(rows), 3*n) // each parent and its two children
			for _, r := range rows {
				is.Equal(store.PartitionOf(r.RootID, tt.of), tt.partition)
				is.Equal(r.State, store.Done)
				if r.ParentID != "" {
					is.Equal(r.RootID, r.ParentID) // a child keeps its root's partition
				}
			}
		})
	}
}

func TestPartitionConfig(t *testing.T) {
	tests := []partitionCase{
		{"partition zero", 0, 12},
		{"past the last", 13, 12},
		{"negative count", 1, -1},
		{"a partition without a count", 3, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			_, err := New(Config{Store: memstore.New(), Partitions: tt.of, Partition: tt.partition})
			is.True(err != nil)
			is.True(strings.HasPrefix(err.Error(), "scheduler: Config.Partition "))
		})
	}
}

// The previous default endpoint is kept per partition: each partition
// moves its own calls when the default changed, the first start of a
// partition reading the value a single-owner server left.
func TestPartitionDefaultEndpoint(t *testing.T) {
	is := is.New(t)
	ctx := context.Background()
	const old, cur = "http://127.0.0.1:1/old", "http://127.0.0.1:1/new"
	st := memstore.New()
	now := time.Now()
	row := &store.Call{ID: "a", RootID: "a", Endpoint: old, Function: "f", CreatedAt: now, UpdatedAt: now,
		ExpiresAt: now.Add(time.Hour), State: store.Pending}
	is.NoErr(st.Apply(ctx, &store.Batch{Calls: []*store.Call{row}, Meta: map[string]string{store.MetaDefaultEndpoint: old}}))
	start := func(p int) {
		e, err := New(Config{Store: st, Partitions: 2, Partition: p, DefaultEndpoint: cur, MinBackoff: time.Hour, MaxBackoff: time.Hour})
		is.NoErr(err)
		is.NoErr(e.Start(ctx))
		is.NoErr(e.Close())
	}
	start(1)
	got, err := st.GetCall(ctx, "a")
	is.NoErr(err)
	is.Equal(got.Endpoint, cur) // moved
	for _, k := range []struct{ key, want string }{
		{store.MetaDefaultEndpoint + ".p1", cur},
		{store.MetaDefaultEndpoint + ".p2", ""},
		{store.MetaDefaultEndpoint, old}, // the single owner's, left as it was
	} {
		v, err := st.Meta(ctx, k.key)
		is.NoErr(err)
		is.Equal(v, k.want)
	}
	start(2)
	v, err := st.Meta(ctx, store.MetaDefaultEndpoint+".p2")
	is.NoErr(err)
	is.Equal(v, cur) // its first start read the single owner's and recorded its own
}
