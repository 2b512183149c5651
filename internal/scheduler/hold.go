package scheduler

import (
	"errors"
	"time"

	sdkv1 "buf.build/gen/go/stealthrocket/dispatch-proto/protocolbuffers/go/dispatch/sdk/v1"

	"github.com/dispatchkit/dispatch/internal/store"
)

// One commit per await step: a child's final outcome that makes its
// suspended parent ready is held instead of submitted, the parent resumed
// at once with the result from memory, and the held batch committed in
// the same transaction as the parent's answer. The rules, and why they
// keep the protocol's guarantees, are in the package documentation ("One
// commit per await step").

// DefaultMaxHold is how long a held batch waits for its parent's answer
// before it is committed on its own ([Config.MaxHold]).
const DefaultMaxHold = 20 * time.Millisecond

// heldBatch is the batch of a child's final outcome that resumed a parent
// before it was durable.
type heldBatch struct {
	b  *store.Batch
	fn func() // runs with e.mu held once b is durable
}

// canHold reports whether the final outcome of a child that makes p ready
// may be held: the engine runs and can start p now (its endpoint has no
// queue and a free slot), no other result for p is on its way to the
// store (the resume would overtake it), and the child's own batch is not
// itself joined to a held one (a nested workflow's exit). Called with e.mu
// held.
func (e *Engine) canHold(p *call, child *call) bool {
	return e.cfg.MaxHold > 0 && child.held == nil && p.unsettled == 0 &&
		!e.closing && e.broken == nil && e.commit != nil &&
		p.ep.ready == 0 && p.ep.lim.canStart(p.ep)
}

// hold resumes the suspended p with res (the final outcome of child id,
// whose batch is b, finished by fn once durable) before b is durable: res
// goes to p's inbox in memory, p starts, and b waits in p.held for p's
// answer, for at most MaxHold. Called with e.mu held, with canHold true.
func (e *Engine) hold(p *call, id string, res *sdkv1.CallResult, b *store.Batch, fn func(), now time.Time) {
	p.inbox = append(p.inbox, res)
	p.inboxIDs = append(p.inboxIDs, id)
	p.held = &heldBatch{b: b, fn: fn}
	e.holds++
	e.makeReady(p)
	switch {
	case p.held == nil:
		// p expired as it was started: its final batch took b along.
	case p.state == stRunning:
		// A running call has no other timer: its answer disarms it.
		e.arm(p, after(now, e.cfg.MaxHold))
	default:
		e.flush(p) // not started after all: never keep b waiting
	}
}

// flush submits the batch held for p on its own, if there is one: before
// any other batch that touches p (another result), when p's answer is
// late (MaxHold), and when the engine closes. Called with e.mu held.
func (e *Engine) flush(p *call) {
	h := p.held
	if h == nil {
		return
	}
	p.held = nil
	e.holdsAlone++
	if p.state == stRunning {
		e.disarm(p) // the MaxHold timer
	}
	e.submit(h.b, h.fn)
}

// submitFor submits b, a change of c, like submit; if a batch is held for
// c, the two go in one transaction, the held one first. Every change of c
// goes through here, so a held batch is never overtaken by a later change
// of c. Called with e.mu held.
func (e *Engine) submitFor(c *call, b *store.Batch, fn func()) {
	h := c.held
	if h == nil {
		e.submit(b, fn)
		return
	}
	c.held = nil
	elide(h.b, b)
	e.submitted(e.commit.SubmitPair(h.b, e.callback(h.fn), b, e.callback(fn)))
}

// elide drops from the pair (held, b) the result that held adds to an
// inbox when b removes it again (the resume carried it and the parent
// answered): applied together, the two writes leave nothing behind.
func elide(held, b *store.Batch) {
	if len(held.Results) != 1 || len(b.Delivered) == 0 {
		return
	}
	r := held.Results[0]
	for i, k := range b.Delivered {
		if k.ParentID == r.ParentID && k.ChildID == r.ChildID {
			held.Results = held.Results[:0]
			b.Delivered = append(b.Delivered[:i], b.Delivered[i+1:]...)
			return
		}
	}
}

// flushAll submits every held batch on its own: the engine is closing,
// and the answers they wait for will not come. Called with e.mu held.
func (e *Engine) flushAll() {
	for _, c := range e.calls {
		e.flush(c)
	}
}

// callback is the committer's callback of a batch whose effects are fn
// (nil: none): fn runs with e.mu held once the batch is durable, and
// never if it could not be stored.
func (e *Engine) callback(fn func()) func(error) {
	return func(err error) {
		if err == nil && fn == nil {
			return
		}
		e.mu.Lock()
		defer e.mu.Unlock()
		if err != nil {
			e.fail(err)
			return
		}
		fn()
	}
}

// submitted handles the error of submitting a batch. Called with e.mu
// held.
func (e *Engine) submitted(err error) {
	switch {
	case err == nil:
	case errors.Is(err, store.ErrClosed):
		// Closing: the change is lost with the process, like a crash;
		// the store has the previous state and it is replayed on start.
		e.log.Debug().Err(err).Msg("change not stored: closing")
	default:
		e.fail(err)
	}
}
