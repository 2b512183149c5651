package scheduler

import (
	"context"
	"errors"
	"fmt"

	sdkv1 "buf.build/gen/go/stealthrocket/dispatch-proto/protocolbuffers/go/dispatch/sdk/v1"

	"github.com/dispatchkit/dispatch/internal/store"
)

// Cancelling a call. Cancel stops a call and its whole tree of live
// descendants (its children, theirs, and the children a previous
// generation or a finished descendant left running), in one batch: every
// call of the tree becomes done with status PERMANENT_ERROR and an error
// of type [CancelType], the Run requests in flight are cancelled (their
// outcomes dropped), queued and suspended calls never run again and their
// timers are disarmed. The protocol has no CANCELLED status;
// PERMANENT_ERROR is the final status that is not retried.
//
// The parent of the cancelled call, if it still waits for this generation
// of its children, gets the error in its inbox, in the same batch, and
// resumes with it like with any failed child. The calls of the tree below
// the cancelled one deliver nothing: their parents are cancelled too.
//
// Finding the tree walks the live calls of the cancelled call's root
// under the engine lock (the calls keep no list of their children): for a
// root call, every live call of its root; below a root, those whose chain
// of parents reaches the call, the parents that are done read from the
// store. It costs a visit of every live call, once per cancel.

// CancelType is the Error.type of the error of a cancelled call.
const CancelType = "CANCELLED"

// ErrUnknownCall is the error of Cancel for an id the store has no call
// for.
var ErrUnknownCall = errors.New("scheduler: unknown call")

// Cancel cancels call id and its tree of live descendants, as the
// package documentation says, and returns how many calls it stopped once
// the change is durable; by says who cancelled, in the error's message
// ("dispatch: call ID was cancelled by BY"). A call already final (done,
// failed, expired or cancelled before) is left as it is: Cancel returns 0
// and no error, once that final outcome is durable. An id the store has
// no call for gives [ErrUnknownCall].
// Cancel fails with ErrClosed when the engine is not running, and a
// *[StoreError] once the store cannot write.
func (e *Engine) Cancel(ctx context.Context, id, by string) (int, error) {
	parents := map[string]string{} // the parents of done calls, read from the store
	for {
		e.mu.Lock()
		if err := e.errLocked(); err != nil {
			e.mu.Unlock()
			return 0, err
		}
		target := e.calls[id]
		if target == nil {
			if _, finishing := e.finishing[id]; finishing {
				// Final in memory, its row not durable yet (an outcome
				// held for its parent's answer waits up to MaxHold):
				// answer once it is, so that "already final" is never
				// undone by a crash before that commit.
				w := e.watchLocked(id)
				e.mu.Unlock()
				return 0, w.wait(ctx)
			}
			e.mu.Unlock()
			return 0, e.cancelStored(ctx, id)
		}
		tree, missing := e.treeOf(target, parents)
		if len(missing) == 0 {
			done, err := e.cancelTree(target, tree, by)
			e.mu.Unlock()
			if err != nil {
				return 0, err
			}
			// Wait for the commit even if ctx ends, as Dispatch does: the
			// caller learns whether the cancel is durable only by waiting.
			if err := <-done; err != nil {
				return 0, &StoreError{Err: err}
			}
			return len(tree), nil
		}
		e.mu.Unlock()
		for _, m := range missing {
			row, err := e.cfg.Store.GetCall(ctx, m)
			switch {
			case errors.Is(err, store.ErrNotFound):
				parents[m] = "" // not a call of this store: no ancestor
			case err != nil:
				return 0, fmt.Errorf("scheduler: cancelling call %s: reading call %s: %w", id, m, err)
			default:
				parents[m] = row.ParentID
			}
		}
	}
}

// cancelStored answers Cancel for a call the engine does not run: done,
// or unknown.
func (e *Engine) cancelStored(ctx context.Context, id string) error {
	row, err := e.cfg.Store.GetCall(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return ErrUnknownCall
	case err != nil:
		return fmt.Errorf("scheduler: cancelling call %s: %w", id, err)
	case row.State != store.Done:
		// The engine runs every live call of the store; a live row it does
		// not know means its outcome could not be stored.
		return fmt.Errorf("scheduler: call %s is not finished in the store, yet not running: its outcome could not be stored; see the server's log", id)
	}
	return nil
}

// errLocked is Err with e.mu held.
func (e *Engine) errLocked() error {
	switch {
	case !e.started || e.closing:
		return ErrClosed
	case e.broken != nil:
		return &StoreError{Err: e.broken}
	}
	return nil
}

// treeOf returns target and its live descendants; or, when the chain of
// parents of a live call of target's root reaches a call that is neither
// live nor in parents, the ids of those calls, to read from the store.
// Called with e.mu held.
func (e *Engine) treeOf(target *call, parents map[string]string) (tree []*call, missing []string) {
	tree = []*call{target}
	if target.parentID == "" {
		for _, c := range e.calls {
			if c.rootID == target.id && c != target {
				tree = append(tree, c)
			}
		}
		return tree, nil
	}
	below := map[string]bool{target.id: true} // ids known to be in the tree (true) or not
	var path []string
	for _, c := range e.calls {
		if c.rootID != target.rootID || c == target {
			continue
		}
		path = path[:0]
		in, known := false, true
		for cur := c.parentID; ; {
			if v, ok := below[cur]; ok {
				in = v
				break
			}
			if cur == "" {
				break
			}
			path = append(path, cur)
			if p := e.calls[cur]; p != nil {
				cur = p.parentID
			} else if p, ok := e.finishing[cur]; ok {
				// Done, its final row not durable yet: with early start
				// (transition.go, poll) its creation may not be stored
				// either, and the store would not know it.
				cur = p
			} else if p, ok := parents[cur]; ok {
				cur = p
			} else {
				missing = append(missing, cur)
				known = false
				break
			}
		}
		if !known {
			continue
		}
		for _, id := range path {
			below[id] = in
		}
		below[c.id] = in
		if in {
			tree = append(tree, c)
		}
	}
	if len(missing) > 0 {
		return nil, missing
	}
	return tree, nil
}

// cancelTree makes every call of tree (target first) done with the error
// of a cancel, hands target's error to its parent, and submits the change
// in one batch; the returned channel gets the commit's outcome. Called
// with e.mu held.
func (e *Engine) cancelTree(target *call, tree []*call, by string) (<-chan error, error) {
	now := e.now()
	nowN := now.UnixNano()
	b := &store.Batch{Calls: make([]*store.Call, 0, len(tree))}
	rows := make([]*store.Call, len(tree))
	var res *sdkv1.CallResult
	// A batch held for a call of the tree (a child's outcome its resume
	// carries, hold.go) goes to the store first, on its own: the cancel
	// must not overtake it, and the answer it waited for will not come.
	for _, c := range tree {
		e.flush(c)
	}
	for i, c := range tree {
		msg := fmt.Sprintf("dispatch: call %s was cancelled by %s", c.id, by)
		if c != target {
			msg = fmt.Sprintf("dispatch: call %s was cancelled with its ancestor %s, by %s", c.id, target.id, by)
		}
		cerr := &sdkv1.Error{Type: CancelType, Message: msg}
		if c == target {
			res = &sdkv1.CallResult{CorrelationId: c.corrID, DispatchId: c.id, Error: cerr}
		}
		if c.stop != nil {
			c.stop() // the request in flight ends; its outcome is dropped (attempt.go)
			c.stop = nil
		}
		c.lastStatus, c.lastErr = sdkv1.Status_STATUS_PERMANENT_ERROR, cerr
		row := c.row(nowN)
		row.State = store.Done
		row.CoroutineState, row.StateType, row.PollError = nil, "", nil
		b.Calls = append(b.Calls, row)
		rows[i] = row
		if c.polled || len(c.inbox) > 0 {
			b.ClearInbox = append(b.ClearInbox, c.id)
		}
		c.state = stDone
		e.disarm(c)
		delete(e.calls, c.id)
		e.finishing[c.id] = c.parentID
		c.inbox, c.inboxIDs, c.stateAny, c.stateRaw = nil, nil, nil, nil
	}

	var deliver func()
	if p := e.calls[target.parentID]; p != nil && p.gen == target.parentGen {
		// Another result for p, as in complete: after the one held for
		// p, and counted while on its way to the store.
		e.flush(p)
		p.unsettled++
		e.seq++
		b.Results = append(b.Results, store.Result{
			ParentID:  p.id,
			ParentGen: p.gen,
			ChildID:   target.id,
			Seq:       e.seq,
			Data:      marshal(res),
		})
		gen, id := p.gen, target.id
		deliver = func() {
			p.unsettled--
			if p.state == stDone || p.gen != gen {
				return
			}
			p.inbox = append(p.inbox, res)
			p.inboxIDs = append(p.inboxIDs, id)
			if p.state == stSuspended && len(p.inbox) >= int(p.minResults) {
				e.makeReady(p)
			}
		}
	}

	done := make(chan error, 1)
	err := e.commit.Submit(b, func(err error) {
		e.mu.Lock()
		if err != nil {
			e.fail(err)
		} else {
			if deliver != nil {
				deliver()
			}
			for _, row := range rows {
				e.finished(row.ID, row)
			}
		}
		e.mu.Unlock()
		done <- err
	})
	if err != nil {
		if errors.Is(err, store.ErrClosed) {
			return nil, ErrClosed
		}
		e.fail(err)
		return nil, &StoreError{Err: err}
	}
	if e.log.Debug().Enabled() {
		e.log.Debug().Str("id", target.id).Int("calls", len(tree)).Str("by", by).Msg("cancelled")
	}
	return done, nil
}
