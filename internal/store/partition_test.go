package store_test

import (
	"crypto/rand"
	"hash/fnv"
	"testing"

	"github.com/matryer/is"

	"github.com/dispatchkit/dispatch/internal/store"
)

// fnvPartition is PartitionOf as it was first written, with hash/fnv:
// partitions already stored depend on it never changing.
func fnvPartition(id string, n int) int {
	if n <= 0 {
		return 0
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(id))
	return int(h.Sum32()%uint32(n)) + 1
}

func TestPartitionOfMatchesFNV(t *testing.T) {
	random := make([]string, 200)
	for i := range random {
		b := make([]byte, 1+i%40)
		_, _ = rand.Read(b)
		random[i] = string(b)
	}
	tests := []struct {
		name string
		ids  []string
		n    []int
	}{
		{"empty id", []string{""}, []int{1, 12}},
		{"ids of the scheduler's form", []string{"0123456789abcdefghij", "06fkq8k2c7g00000a1b2", "zzzzzzzzzzzzzzzzzzzz"}, []int{1, 2, 12, 64}},
		{"idempotency keys", []string{"order-42", "chain-key-1", "日本語のキー"}, []int{3, 12}},
		{"random bytes", random, []int{7, 12, 1000}},
		{"no partitions", []string{"anything"}, []int{0, -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			for _, id := range tt.ids {
				for _, n := range tt.n {
					want := fnvPartition(id, n)
					is.Equal(store.PartitionOf(id, n), want)              // the same hash as ever
					is.Equal(store.PartitionOfBytes([]byte(id), n), want) // in bytes too
					if n > 0 {
						is.True(want >= 1 && want <= n) // 1..n
					}
				}
			}
		})
	}
}
