package store

import "errors"

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
func PartitionOf(rootID string, n int) int { return partitionOf(rootID, n) }

// PartitionOfBytes is PartitionOf of an id still in bytes, which a maker
// of ids that draws them into a partition tests without making a string
// of each miss.
func PartitionOfBytes(id []byte, n int) int { return partitionOf(id, n) }

// partitionOf is FNV-1a (32-bit, as hash/fnv's New32a) of id, modulo n,
// plus 1, written out so that it allocates nothing.
func partitionOf[T string | []byte](id T, n int) int {
	if n <= 0 {
		return 0
	}
	const offset, prime = 2166136261, 16777619
	h := uint32(offset)
	for i := 0; i < len(id); i++ {
		h ^= uint32(id[i])
		h *= prime
	}
	return int(h%uint32(n)) + 1
}

// ErrFenced is the error (errors.Is) of an Apply refused because the
// lease of the store's partition moved to another owner (its epoch
// changed): another replica owns those calls now and may have changed
// them, so nothing of this store may be written any more. A [Committer]
// does not retry it: it fails for good at once.
var ErrFenced = errors.New("store: the partition's lease moved to another owner, which now writes its calls: " +
	"this store writes nothing more; acquire the partition again and recover it")
