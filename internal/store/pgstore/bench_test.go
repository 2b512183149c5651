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
// (dispatch_fence) in the same batch, sent by the cluster's writer. The
// single owner of BenchmarkWorkflowBatches fences too (row 0's epoch), so
// the difference is the writer's hand-over and the fence of a partition
// against that of row 0, not the fence itself (EXPLAIN ANALYZE measures
// that: see the package documentation).
func BenchmarkWorkflowBatchesFenced(b *testing.B) {
	storetest.BenchWorkflowBatches(b, func(b *testing.B) store.Store {
		c := openCluster(b, pgtest.URL(b), pgstore.ClusterOptions{})
		return c.Store(acquire(b, c, 1))
	})
}
