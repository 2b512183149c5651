package store

import (
	"errors"
	"hash/fnv"
)

// PartitionOf returns the partition, 1..n, of the calls of the root call
// rootID: the FNV-1a (32-bit) hash of rootID modulo n, plus 1. Partition 0
// means none, the calls of a single-owner store, and is what it returns
// when n is not positive. Children share their root's partition (callers
// pass the root id), so that a parent and the results of its children
// are always in one partition, owned by one replica. The engines of a
// partition also draw every id, a child's too, in their partition, so
// that PartitionOf of a call's own id is its tree's: a replica given only
// the id of a call it has no row for yet (a child started early) knows
// where it runs. Children made by older builds were drawn in no
// partition: only their root id tells theirs.
//
// FNV-1a rather than a stronger hash: it is fixed forever (partitions
// already stored depend on it), cheap on the short ids of calls, and
// spreads them evenly enough for a dozen partitions.
func PartitionOf(rootID string, n int) int {
	if n <= 0 {
		return 0
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(rootID)) // a hash.Hash never fails
	return int(h.Sum32()%uint32(n)) + 1
}

// ErrFenced is the error (errors.Is) of an Apply refused because the
// lease of the store's partition moved to another owner (its epoch
// changed): another replica owns those calls now and may have changed
// them, so nothing of this store may be written any more. A [Committer]
// does not retry it: it fails for good at once.
var ErrFenced = errors.New("store: the partition's lease moved to another owner, which now writes its calls: " +
	"this store writes nothing more; acquire the partition again and recover it")
