package pgstore_test

import (
	"testing"

	"github.com/dispatchkit/dispatch/internal/pgtest"
	"github.com/dispatchkit/dispatch/internal/store"
	"github.com/dispatchkit/dispatch/internal/store/pgstore"
	"github.com/dispatchkit/dispatch/internal/store/storetest"
)

// BenchmarkWorkflowBatches is the SQLite store's benchmark of the same
// name on PostgreSQL (a database of its own for each group size, on the
// test server: fsync and synchronous_commit on).
func BenchmarkWorkflowBatches(b *testing.B) {
	storetest.BenchWorkflowBatches(b, func(b *testing.B) store.Store { return open(b, pgtest.URL(b)) })
}

// BenchmarkWorkflowBatchesFenced is BenchmarkWorkflowBatches on the store
// of a partition of a cluster: the same statements, after the fence
// (dispatch_fence) in the same batch. The difference is the fence's cost.
func BenchmarkWorkflowBatchesFenced(b *testing.B) {
	storetest.BenchWorkflowBatches(b, func(b *testing.B) store.Store {
		c := openCluster(b, pgtest.URL(b), pgstore.ClusterOptions{})
		return c.Store(acquire(b, c, 1))
	})
}
