package scheduler

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	sdkv1 "buf.build/gen/go/stealthrocket/dispatch-proto/protocolbuffers/go/dispatch/sdk/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/dispatchkit/dispatch/internal/store"
)

// Idempotency keys. DispatchKey starts the calls of a request once per
// key: the first request with a key records it, with the ids of its
// calls, in the batch that makes the calls (so the key is durable exactly
// when they are); a request with the key within its retention gets those
// ids and starts nothing, and one that names other calls is refused with
// a *[KeyConflictError].
//
// Requests with the same key are serialised by a lock of that key, held
// from the lookup in the store to the commit of the calls: of concurrent
// requests, one starts the calls and the others, once it has committed,
// find its key. The lock is this engine's, which is enough while one
// engine owns a store, and in the server's replica mode too, where the
// requests of a key all go to the one engine that owns the key's
// partition (store.PartitionOf of the key), on whichever replica they
// arrive. A request whose commit failed recorded nothing,
// key included: a retry starts the calls.
//
// A key is kept for Config.KeyRetention from the request that recorded
// it. An expired key is treated as absent (the next request with it
// starts its calls and replaces the row), and is deleted by a pruning
// batch within pruneEvery of its expiration.

// KeyConflictError is the error of [Engine.DispatchKey] for a key that
// an earlier request, within the key's retention, used for other calls.
type KeyConflictError struct {
	Key       string
	CreatedAt time.Time // when the earlier request recorded the key
	IDs       []string  // the calls it started
}

func (e *KeyConflictError) Error() string {
	return fmt.Sprintf("scheduler: idempotency key %q was used at %s for other calls (%s)",
		e.Key, e.CreatedAt.UTC().Format(time.RFC3339), strings.Join(e.IDs, ", "))
}

// DispatchKey is [Engine.Dispatch] for a request with the idempotency key
// key (already checked by the caller): it returns the ids of the calls of
// the request that recorded key within its retention, with replayed true,
// and starts nothing; or it dispatches calls and records key with their
// ids in the same transaction.
//
// The calls are told apart by their functions, inputs, expirations and
// versions, in order: not by their endpoints, since a program in local
// mode listens on a new port at each run and a retry after a crash names
// another. A key recorded for other calls gives a *[KeyConflictError].
func (e *Engine) DispatchKey(ctx context.Context, key string, calls []*sdkv1.Call) (ids []string, replayed bool, err error) {
	digest := callsDigest(calls)
	unlock, err := e.keyLocks.lock(ctx, key)
	if err != nil {
		return nil, false, err
	}
	defer unlock()
	if err := e.Err(); err != nil {
		return nil, false, err
	}
	k, err := e.cfg.Store.Key(ctx, key)
	switch {
	case err == nil && e.now().Before(k.ExpiresAt):
		if !bytes.Equal(k.Digest, digest) {
			return nil, false, &KeyConflictError{Key: key, CreatedAt: k.CreatedAt, IDs: k.IDs}
		}
		return k.IDs, true, nil
	case err != nil && !errors.Is(err, store.ErrNoKey):
		return nil, false, fmt.Errorf("scheduler: reading idempotency key %q: %w", key, err)
	}
	ids, err = e.dispatch(ctx, calls, &store.Key{Key: key, Digest: digest})
	return ids, false, err
}

// keyRow is the row of key for the calls ids made now. Called with e.mu
// held.
func (e *Engine) keyRow(key *store.Key, ids []string, now time.Time) store.Key {
	k := *key
	k.IDs = ids
	k.CreatedAt = now
	until := after(now, e.cfg.KeyRetention)
	k.ExpiresAt = time.Unix(0, until)
	e.keysUntil = max(e.keysUntil, until)
	return k
}

// callsDigest identifies calls as DispatchKey compares them: a SHA-256 of
// the function, input, expiration and version of each, in order. An input
// whose type is linked into the server is re-encoded deterministically
// (map fields in order), so that equal values compare equal whatever the
// order their sender's encoder chose.
func callsDigest(calls []*sdkv1.Call) []byte {
	h := sha256.New()
	var buf []byte
	field := func(b []byte) {
		buf = binary.AppendUvarint(buf[:0], uint64(len(b)))
		h.Write(buf)
		h.Write(b)
	}
	det := proto.MarshalOptions{Deterministic: true}
	for _, c := range calls {
		field([]byte(c.GetFunction()))
		in := c.GetInput()
		field([]byte(in.GetTypeUrl()))
		value := in.GetValue()
		if in != nil {
			if m, err := anypb.UnmarshalNew(in, proto.UnmarshalOptions{}); err == nil {
				if b, err := det.Marshal(m); err == nil {
					value = b
				}
			}
		}
		field(value)
		exp, _ := det.Marshal(c.GetExpiration())
		field(exp)
		field([]byte(c.GetVersion()))
	}
	return h.Sum(nil)
}

// keyLocks serialises the requests that carry the same key.
type keyLocks struct {
	mu sync.Mutex
	m  map[string]*keyLock
}

type keyLock struct {
	token chan struct{} // holds a value while the key is locked
	refs  int           // holders and waiters
}

// lock locks key until the returned function is called, or fails with
// ctx.Err() if ctx ends first.
func (l *keyLocks) lock(ctx context.Context, key string) (unlock func(), err error) {
	l.mu.Lock()
	if l.m == nil {
		l.m = make(map[string]*keyLock)
	}
	k := l.m[key]
	if k == nil {
		k = &keyLock{token: make(chan struct{}, 1)}
		l.m[key] = k
	}
	k.refs++
	l.mu.Unlock()
	select {
	case k.token <- struct{}{}:
	case <-ctx.Done():
		l.release(key, k)
		return nil, ctx.Err()
	}
	return func() {
		<-k.token
		l.release(key, k)
	}, nil
}

func (l *keyLocks) release(key string, k *keyLock) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if k.refs--; k.refs == 0 {
		delete(l.m, key)
	}
}

// pruneEvery is how often expired keys are pruned, for a retention r:
// half of it, between 10 ms and an hour.
func pruneEvery(r time.Duration) time.Duration {
	return min(max(r/2, 10*time.Millisecond), time.Hour)
}

// startPruner starts the pruner of keys: every pruneEvery until the
// engine closes, a batch deletes the keys expired by then, as long as keys
// may be left to expire: those this process writes, and those of the
// previous run, which expire within a retention of the start. Called with
// e.mu held, from Start.
func (e *Engine) startPruner() {
	e.keysUntil = max(e.keysUntil, after(e.now(), e.cfg.KeyRetention))
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		t := time.NewTicker(pruneEvery(e.cfg.KeyRetention))
		defer t.Stop()
		for {
			select {
			case <-t.C:
				e.mu.Lock()
				e.pruneNow()
				e.mu.Unlock()
			case <-e.ctx.Done():
				return
			}
		}
	}()
}

// pruneNow deletes the keys expired by now, unless an earlier pruning
// came after every key this engine knows of expired. Called with e.mu
// held.
func (e *Engine) pruneNow() {
	if e.keysPruned >= e.keysUntil || e.closing || e.broken != nil || e.commit == nil {
		return
	}
	now := e.now()
	e.keysPruned = now.UnixNano()
	e.submit(&store.Batch{PruneKeys: now}, nil)
}
