package scheduler

// Waiting for outcomes. A caller that wants the final outcome of a call
// (the server's Result) registers with Watch; complete closes the
// channel of the call's waiter in its commit callback, so a woken caller
// always finds the outcome in the store. Calls that completed in memory
// but whose outcome is not yet durable stay in e.finishing until their
// batch is committed, so that Watch never sends a caller to the store
// too early.

// waiter is shared by everyone watching one call.
type waiter struct {
	ch chan struct{} // closed once the call's outcome is durable
	n  int           // watchers that have not stopped
}

// Watch returns a channel closed once call id has a durable final outcome
// (done, failed for good or expired), and a function to call when the
// caller stops waiting. The channel is nil when id is not a live call:
// its outcome is already in the store, or no such call exists. Watch
// returns ErrClosed when the engine is not running; [Engine.Done] is
// closed when it stops, which also ends every wait.
func (e *Engine) Watch(id string) (<-chan struct{}, func(), error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.started || e.closing {
		return nil, nil, ErrClosed
	}
	_, live := e.calls[id]
	if !live {
		_, live = e.finishing[id]
	}
	if !live {
		return nil, func() {}, nil
	}
	w := e.waiters[id]
	if w == nil {
		w = &waiter{ch: make(chan struct{})}
		e.waiters[id] = w
	}
	w.n++
	return w.ch, func() { e.unwatch(id, w) }, nil
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

// Done returns a channel closed when the engine stops.
func (e *Engine) Done() <-chan struct{} { return e.ctx.Done() }

// finished wakes the watchers of id once its outcome is durable. Called
// with e.mu held, from the commit callback of complete.
func (e *Engine) finished(id string) {
	delete(e.finishing, id)
	if w := e.waiters[id]; w != nil {
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
}

// Stats returns counts of the live calls, for metrics and benchmarks. It
// visits every live call under the engine lock.
func (e *Engine) Stats() Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := Stats{Live: len(e.calls)}
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
