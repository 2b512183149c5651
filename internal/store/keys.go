package store

import (
	"errors"
	"time"
)

// Idempotency keys. A DispatchRequest sent with an idempotency key (the
// local server's Idempotency-Key header; the protocol has no field for
// it) starts its calls once: the server records the key with the ids of
// the calls it started, in the same [Batch] as the calls, so that the key
// is durable exactly when they are. A later request with the key, within
// its retention, gets those ids back and starts nothing.
//
// A key is kept until its ExpiresAt; the scheduler then prunes it with a
// Batch whose PruneKeys is the time of the pruning. An expired key a
// lookup still finds is treated as absent by the scheduler, and the next
// request with it replaces the row.

// ErrNoKey is returned by [Store.Key] for a key that is not stored.
var ErrNoKey = errors.New("store: no such idempotency key")

// Key is the durable row of one idempotency key.
type Key struct {
	Key string
	// Digest identifies the calls of the request that recorded the key
	// (a SHA-256 of their encoding), so that a request reusing the key
	// for other calls is told apart and refused.
	Digest []byte
	// IDs are the dispatch ids of the calls the request started, in the
	// order of its calls.
	IDs       []string
	CreatedAt time.Time
	ExpiresAt time.Time
}
