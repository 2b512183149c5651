package scheduler

import (
	"context"

	"github.com/dispatchkit/dispatch/internal/store"
)

// Waiting for outcomes. A caller that wants the final outcome of a call
// (the server's Result) registers with Watch; complete closes the
// channel of the call's waiter in its commit callback, handing over the
// row it stored, so a woken caller has the durable outcome without
// reading the store. Calls that completed in memory but whose outcome is
// not yet durable stay in e.finishing until their batch is committed, so
// that Watch never sends a caller to the store too early. When the store
// fails for good, every waiter is woken with the error: the outcomes it
// waits for cannot become durable before a restart.

// waiter is shared by everyone watching one call.
type waiter struct {
	ch  chan struct{} // closed once the call's outcome is durable, or the store failed
	n   int           // watchers that have not stopped
	row *store.Call   // the stored final row, set before ch is closed
	err error         // or why it will not come, set before ch is closed
}

// A Watch waits for the outcome of one live call; see [Engine.Watch].
type Watch struct {
	e  *Engine
	id string
	w  *waiter
}

// Done is closed once the call's final outcome is durable, or once the
// store has failed (Outcome then returns the error).
func (w *Watch) Done() <-chan struct{} { return w.w.ch }

// Outcome returns the call's stored final row once Done is closed, or a
// *[StoreError] when the store failed before the outcome was durable. The
// row is shared: do not modify it.
func (w *Watch) Outcome() (*store.Call, error) { return w.w.row, w.w.err }

// Stop releases the watch; call it when the caller stops waiting.
func (w *Watch) Stop() { w.e.unwatch(w.id, w.w) }

// Watch returns a watch of call id that ends once the call has a durable
// final outcome (done, failed for good or expired). It returns nil and no
// error when id is not a live call: its outcome is already in the store,
// or no such call exists. Watch returns ErrClosed when the engine is not
// running, and a *[StoreError] once the store cannot write. Closing the
// engine does not end a watch: a caller also waits for its own shutdown
// (the server closes its stopping channel before it closes the engine).
func (e *Engine) Watch(id string) (*Watch, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.started || e.closing {
		return nil, ErrClosed
	}
	_, live := e.calls[id]
	if !live {
		_, live = e.finishing[id]
	}
	if !live {
		return nil, nil
	}
	if e.broken != nil {
		return nil, &StoreError{Err: e.broken}
	}
	return e.watchLocked(id), nil
}

// watchLocked registers a watch of the live or finishing call id. Called
// with e.mu held, the store not broken.
func (e *Engine) watchLocked(id string) *Watch {
	w := e.waiters[id]
	if w == nil {
		w = &waiter{ch: make(chan struct{})}
		e.waiters[id] = w
	}
	w.n++
	return &Watch{e: e, id: id, w: w}
}

// wait waits until the watched outcome is durable (nil), the store failed
// (a *[StoreError]) or ctx ends (its error), and stops the watch.
func (w *Watch) wait(ctx context.Context) error {
	defer w.Stop()
	select {
	case <-w.Done():
		_, err := w.Outcome()
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (e *Engine) unwatch(id string, w *waiter) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.waiters[id] != w {
		return // already woken
	}
	if w.n--; w.n == 0 {
		delete(e.waiters, id)
	}
}

// Err reports whether the engine runs: nil while it does, a *[StoreError]
// once the store cannot write (nothing is accepted or run until a
// restart), ErrClosed before Start and once closing.
func (e *Engine) Err() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	switch {
	case !e.started || e.closing:
		return ErrClosed
	case e.broken != nil:
		return &StoreError{Err: e.broken}
	}
	return nil
}

// finished wakes the watchers of id once its final row is durable. Called
// with e.mu held, from the commit callback of complete.
func (e *Engine) finished(id string, row *store.Call) {
	delete(e.finishing, id)
	if w := e.waiters[id]; w != nil {
		w.row = row
		close(w.ch)
		delete(e.waiters, id)
	}
}

// wakeAll wakes every watcher with err: the store failed, and no outcome
// becomes durable before a restart. Called with e.mu held.
func (e *Engine) wakeAll(err error) {
	for id, w := range e.waiters {
		w.err = err
		close(w.ch)
		delete(e.waiters, id)
	}
}

// Stats counts the live calls of an engine.
type Stats struct {
	Live      int // calls not done
	Suspended int // calls waiting for results or the end of a poll's max_wait
	// StateBytes is the size of the coroutine states of the live calls:
	// what the store holds for them (the engine keeps the same bytes).
	StateBytes int64
	// Stateful is the number of live calls with a coroutine state.
	Stateful int
	// Held counts the child outcomes held for their parent's answer
	// (hold.go), and HeldAlone those of them committed on their own.
	Held, HeldAlone int64
	// Early counts the children started before the commit that creates
	// them (see "Early start" in the package documentation).
	Early int64
}

// Add adds the counts of o to s: the stats of several engines (a
// replica's partitions) as one.
func (s *Stats) Add(o Stats) {
	s.Live += o.Live
	s.Suspended += o.Suspended
	s.StateBytes += o.StateBytes
	s.Stateful += o.Stateful
	s.Held += o.Held
	s.HeldAlone += o.HeldAlone
	s.Early += o.Early
}

// Stats returns counts of the live calls, for metrics and benchmarks. It
// visits every live call under the engine lock.
func (e *Engine) Stats() Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := Stats{Live: len(e.calls), Held: e.holds, HeldAlone: e.holdsAlone, Early: e.early}
	for _, c := range e.calls {
		if c.state == stSuspended {
			s.Suspended++
		}
		n := len(c.stateRaw)
		if c.stateAny != nil {
			n = len(c.stateAny.GetValue())
		}
		if c.polled {
			s.Stateful++
			s.StateBytes += int64(n)
		}
	}
	return s
}

// Watched returns the number of calls someone waits for, for tests.
func (e *Engine) Watched() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.waiters)
}
