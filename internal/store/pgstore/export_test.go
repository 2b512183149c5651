package pgstore

// CheckLock checks the lock's connection now, as the store does every
// lockCheckEvery.
func (s *Store) CheckLock() { s.lock.check() }

// SchemaV1 is the schema of version 1, as its builds made it.
const SchemaV1 = schema

// SchemaVersion is schemaVersion.
const SchemaVersion = schemaVersion

// SetApplyHook makes the Apply of s, a store of this package, run its
// batch in an explicit transaction and call fn before the commit.
func SetApplyHook(s any, fn func()) { s.(*Store).hook = fn }

// SchemaV2 is what version 2 added.
const SchemaV2 = schemaV2

// CheckLock checks the lock's connection now, as the cluster does every
// lockCheckEvery.
func (c *Cluster) CheckLock() { c.lock.check() }

// SetCommitHook makes the writer of c call fn after each commit with the
// partitions of its Applies. Set it before any Apply.
func SetCommitHook(c *Cluster, fn func(parts []int)) { c.w.onCommit = fn }

// QueuedApplies is the number of Applies waiting for the writer of c.
func QueuedApplies(c *Cluster) int {
	c.w.mu.Lock()
	defer c.w.mu.Unlock()
	return len(c.w.queue)
}
