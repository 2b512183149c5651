// Package memstore is the in-memory [store.Store] of the local Dispatch
// server: nothing survives the process, which is what tests and
// `dispatch test --memory` want.
package memstore

import (
	"cmp"
	"context"
	"slices"
	"sync"

	"github.com/dispatchkit/dispatch/internal/store"
)

// Store keeps everything in maps guarded by one mutex. Rows are copied in
// and out, so callers may reuse their structs; byte slices are shared and
// must not be modified after they are handed over.
type Store struct {
	mu       sync.RWMutex
	calls    map[string]*store.Call
	order    []string // ids in insertion order
	children map[string][]string
	inbox    map[string][]store.Result
	attempts map[string][]store.Attempt
	meta     map[string]string
	keys     map[string]store.Key
	closed   bool
}

// New returns an empty store.
func New() *Store {
	return &Store{
		calls:    make(map[string]*store.Call),
		children: make(map[string][]string),
		inbox:    make(map[string][]store.Result),
		attempts: make(map[string][]store.Attempt),
		meta:     make(map[string]string),
		keys:     make(map[string]store.Key),
	}
}

var _ store.Store = (*Store)(nil)

// Apply implements [store.Store].
func (s *Store) Apply(ctx context.Context, batches ...*store.Batch) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return store.ErrClosed
	}
	for _, b := range batches {
		for _, c := range b.Calls {
			cp := *c
			if _, ok := s.calls[c.ID]; !ok {
				s.order = append(s.order, c.ID)
				if c.ParentID != "" {
					s.children[c.ParentID] = append(s.children[c.ParentID], c.ID)
				}
			}
			s.calls[c.ID] = &cp
		}
		for _, id := range b.ClearInbox {
			delete(s.inbox, id)
		}
		for _, k := range b.Delivered {
			in := s.inbox[k.ParentID]
			in = slices.DeleteFunc(in, func(r store.Result) bool { return r.ChildID == k.ChildID })
			if len(in) == 0 {
				delete(s.inbox, k.ParentID)
			} else {
				s.inbox[k.ParentID] = in
			}
		}
		for _, r := range b.Results {
			in := s.inbox[r.ParentID]
			in = slices.DeleteFunc(in, func(x store.Result) bool { return x.ChildID == r.ChildID })
			s.inbox[r.ParentID] = append(in, r)
		}
		for _, a := range b.Attempts {
			s.attempts[a.CallID] = append(s.attempts[a.CallID], a)
		}
		for k, v := range b.Meta {
			s.meta[k] = v
		}
		if !b.PruneKeys.IsZero() {
			for k, v := range s.keys {
				if !v.ExpiresAt.After(b.PruneKeys) {
					delete(s.keys, k)
				}
			}
		}
		for _, k := range b.Keys {
			k.IDs = slices.Clone(k.IDs)
			s.keys[k.Key] = k
		}
	}
	return nil
}

// Recover implements [store.Store].
func (s *Store) Recover(ctx context.Context, fn func(*store.Call, []store.Result) error) error {
	s.mu.RLock()
	var live []*store.Call
	for _, id := range s.order {
		if c := s.calls[id]; c.State != store.Done {
			cp := *c
			live = append(live, &cp)
		}
	}
	inboxes := make(map[string][]store.Result, len(s.inbox))
	for k, v := range s.inbox {
		inboxes[k] = slices.Clone(v)
	}
	s.mu.RUnlock()
	slices.SortStableFunc(live, func(a, b *store.Call) int { return a.CreatedAt.Compare(b.CreatedAt) })
	for _, c := range live {
		if err := ctx.Err(); err != nil {
			return err
		}
		in := inboxes[c.ID]
		slices.SortStableFunc(in, func(a, b store.Result) int { return cmp.Compare(a.Seq, b.Seq) })
		if err := fn(c, in); err != nil {
			return err
		}
	}
	return nil
}

// GetCall implements [store.Store].
func (s *Store) GetCall(_ context.Context, id string) (*store.Call, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	c, ok := s.calls[id]
	if !ok {
		return nil, store.ErrNotFound
	}
	cp := *c
	return &cp, nil
}

// ListCalls implements [store.Store].
func (s *Store) ListCalls(_ context.Context, opts store.ListOptions) ([]*store.Call, error) {
	limit := opts.Limit
	if limit <= 0 {
		limit = 100
	}
	s.mu.RLock()
	var out []*store.Call
	for _, id := range s.order {
		c := s.calls[id]
		if opts.RootOnly && c.ParentID != "" {
			continue
		}
		if !opts.Before.IsZero() && !c.CreatedAt.Before(opts.Before) {
			continue
		}
		cp := *c
		out = append(out, &cp)
	}
	s.mu.RUnlock()
	slices.SortStableFunc(out, func(a, b *store.Call) int { return b.CreatedAt.Compare(a.CreatedAt) })
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// Children implements [store.Store].
func (s *Store) Children(_ context.Context, id string) ([]*store.Call, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []*store.Call
	for _, cid := range s.children[id] {
		cp := *s.calls[cid]
		out = append(out, &cp)
	}
	slices.SortStableFunc(out, func(a, b *store.Call) int { return a.CreatedAt.Compare(b.CreatedAt) })
	return out, nil
}

// Attempts implements [store.Store]. The table keeps, like SQL's primary
// key on (call, N), the last attempt stored for each N.
func (s *Store) Attempts(_ context.Context, id string) ([]store.Attempt, error) {
	s.mu.RLock()
	table := slices.Clone(s.attempts[id])
	var recent []byte
	if c, ok := s.calls[id]; ok {
		recent = c.RecentAttempts
	}
	s.mu.RUnlock()
	slices.Reverse(table) // so that the stable sort and Compact keep the last
	slices.SortStableFunc(table, func(a, b store.Attempt) int { return cmp.Compare(a.N, b.N) })
	table = slices.CompactFunc(table, func(a, b store.Attempt) bool { return a.N == b.N })
	return store.MergeAttempts(table, id, recent)
}

// Meta implements [store.Store].
func (s *Store) Meta(_ context.Context, key string) (string, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.meta[key], nil
}

// Key implements [store.Store].
func (s *Store) Key(_ context.Context, key string) (*store.Key, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	k, ok := s.keys[key]
	if !ok {
		return nil, store.ErrNoKey
	}
	k.IDs = slices.Clone(k.IDs)
	return &k, nil
}

// Close implements [store.Store].
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}
