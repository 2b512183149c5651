package scheduler

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/matryer/is"

	"github.com/dispatchkit/dispatch/internal/store"
	"github.com/dispatchkit/dispatch/internal/store/memstore"
)

// partitionCase is a case of the partition tests: partition of of.
type partitionCase struct {
	name          string
	partition, of int
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
