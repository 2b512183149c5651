package pgstore_test

import (
	"testing"

	"github.com/dispatchkit/dispatch/internal/pgtest"
	"github.com/dispatchkit/dispatch/internal/store"
	"github.com/dispatchkit/dispatch/internal/store/storetest"
)

// BenchmarkWorkflowBatches is the SQLite store's benchmark of the same
// name on PostgreSQL (a database of its own for each group size, on the
// test server: fsync and synchronous_commit on).
func BenchmarkWorkflowBatches(b *testing.B) {
	storetest.BenchWorkflowBatches(b, func(b *testing.B) store.Store { return open(b, pgtest.URL(b)) })
}
