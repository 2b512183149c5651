package scheduler

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	sdkv1 "buf.build/gen/go/stealthrocket/dispatch-proto/protocolbuffers/go/dispatch/sdk/v1"
	"google.golang.org/protobuf/proto"

	"github.com/dispatchkit/dispatch/internal/status"
	"github.com/dispatchkit/dispatch/internal/store"
)

// outcome applies the outcome of one Run request of c. Called with e.mu
// held.
func (e *Engine) outcome(c *call, ep *endpoint, o outcome, n int, start time.Time) {
	now := e.now()
	e.running--
	ep.lim.answered(ep, o.throttle, now, float64(e.cfg.MinConcurrency), float64(e.cfg.MaxConcurrency))
	defer e.pump(ep)

	c.attempts++
	b := &store.Batch{}
	att := store.Attempt{CallID: c.id, N: int(c.attempts), Start: start, Duration: now.Sub(start), Status: int32(o.status)}
	exit := o.resp.GetExit()
	poll := o.resp.GetPoll()

	switch {
	case exit.GetTailCall() != nil:
		att.Outcome = "tail_call " + exit.GetTailCall().GetFunction()
		c.record(att, b)
		e.tailCall(c, exit.GetTailCall(), now, b)

	case status.Status(o.status).Retried():
		err := o.err
		if err == nil {
			err = exit.GetResult().GetError()
		}
		if err == nil {
			err = returned(o.status, "")
		}
		att.Outcome = "retry: " + err.GetMessage()
		c.record(att, b)
		e.retry(c, o.status, err, now, b)

	case o.status == sdkv1.Status_STATUS_INCOMPATIBLE_STATE:
		att.Outcome = "restart"
		c.record(att, b)
		e.restart(c, exit.GetResult().GetError(), now, b)

	case poll != nil && o.status == sdkv1.Status_STATUS_OK:
		att.Outcome = fmt.Sprintf("poll %d calls", len(poll.GetCalls()))
		c.record(att, b)
		e.consume(c, n, b)
		e.poll(c, poll, now, b)

	case exit != nil:
		res := exit.GetResult()
		if res == nil {
			res = &sdkv1.CallResult{}
		}
		if o.status != sdkv1.Status_STATUS_OK && res.GetError() == nil {
			res.Error = returned(o.status, "")
		}
		att.Outcome = "exit"
		c.record(att, b)
		e.consume(c, n, b)
		e.complete(c, o.status, res, now, b)

	default:
		st, cerr := o.status, o.err
		switch {
		case o.resp != nil && poll == nil:
			st = sdkv1.Status_STATUS_INVALID_RESPONSE
			cerr = serverError(st, "the endpoint's RunResponse has neither exit nor poll")
		case o.resp != nil:
			// A poll beside a failure status that is not retried.
			cerr = returned(st, " with a poll")
		}
		att.Outcome = "error: " + cerr.GetMessage()
		c.record(att, b)
		e.complete(c, st, &sdkv1.CallResult{Error: cerr}, now, b)
	}
}

// consume removes the n inbox results a resume carried. Called with e.mu
// held.
func (e *Engine) consume(c *call, n int, b *store.Batch) {
	if n == 0 {
		return
	}
	for _, id := range c.inboxIDs[:n] {
		b.Delivered = append(b.Delivered, store.ResultKey{ParentID: c.id, ChildID: id})
	}
	rest := copy(c.inbox, c.inbox[n:])
	clear(c.inbox[rest:])
	c.inbox = c.inbox[:rest]
	copy(c.inboxIDs, c.inboxIDs[n:])
	clear(c.inboxIDs[rest:])
	c.inboxIDs = c.inboxIDs[:rest]
	if rest == 0 {
		c.inbox, c.inboxIDs = nil, nil
	}
}

// backoff returns the wait before retry number fails: exponential from
// MinBackoff, capped at MaxBackoff, drawn in [d/2, d).
func (e *Engine) backoff(fails uint16) time.Duration {
	d := e.cfg.MinBackoff
	for i := uint16(1); i < fails && d < e.cfg.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, e.cfg.MaxBackoff)
	return d/2 + rand.N(d/2+1)
}

// retry schedules another attempt of c after a back-off, or fails it with
// TIMEOUT when the back-off reaches past its expiration.
func (e *Engine) retry(c *call, s sdkv1.Status, cause *sdkv1.Error, now time.Time, b *store.Batch) {
	c.fails = min(c.fails+1, math.MaxUint16-1) // saturates (the back-off is long capped by then)
	c.lastStatus, c.lastErr = s, cause
	at := after(now, e.backoff(c.fails))
	if at >= c.expires {
		e.complete(c, sdkv1.Status_STATUS_TIMEOUT, &sdkv1.CallResult{Error: e.expiredError(c, now)}, now, b)
		return
	}
	c.state = stWaiting
	c.retryAt = at
	e.arm(c, at)
	b.Calls = append(b.Calls, c.row(now.UnixNano()))
	e.submitFor(c, b, nil)
}

func (e *Engine) expiredError(c *call, now time.Time) *sdkv1.Error {
	msg := fmt.Sprintf("call expired at %s after %d attempts", time.Unix(0, c.expires).UTC().Format(time.RFC3339Nano), c.attempts)
	if c.lastErr != nil {
		msg += "; last error: " + c.lastErr.GetMessage()
	}
	return serverError(sdkv1.Status_STATUS_TIMEOUT, msg)
}

// expire fails c with TIMEOUT. Called with e.mu held.
func (e *Engine) expire(c *call, now int64) {
	t := time.Unix(0, now)
	e.complete(c, sdkv1.Status_STATUS_TIMEOUT, &sdkv1.CallResult{Error: e.expiredError(c, t)}, t, &store.Batch{})
}

// newGeneration resets c to run from its input again, orphaning its
// children and dropping its inbox. Called with e.mu held.
func (e *Engine) newGeneration(c *call, now time.Time, b *store.Batch) {
	c.gen++
	c.polled = false
	c.stateAny, c.stateRaw, c.pollErr = nil, nil, nil
	c.minResults, c.maxResults, c.deadline = 0, 0, 0
	c.inbox, c.inboxIDs = nil, nil
	c.fails = 0
	c.state = stNew
	e.disarm(c)
	b.ClearInbox = append(b.ClearInbox, c.id)
	b.Calls = append(b.Calls, c.row(now.UnixNano()))
	gen := c.gen
	e.submitFor(c, b, func() {
		if c.state == stNew && c.gen == gen {
			e.makeReady(c)
		}
	})
}

func (e *Engine) tailCall(c *call, tc *sdkv1.Call, now time.Time, b *store.Batch) {
	if tc.GetEndpoint() == "" {
		tc.Endpoint = c.ep.url
	}
	if err := e.validateCall(tc); err != nil {
		cerr := serverError(sdkv1.Status_STATUS_INVALID_ARGUMENT, "dispatch: invalid tail call: "+err.Error())
		e.complete(c, sdkv1.Status_STATUS_INVALID_ARGUMENT, &sdkv1.CallResult{Error: cerr}, now, b)
		return
	}
	c.function, c.input, c.version = tc.GetFunction(), tc.GetInput(), tc.GetVersion()
	c.ep = e.endpoint(tc.GetEndpoint())
	c.rendered = false // a new identity: the next row is written whole
	if d, ok := expiration(tc); ok {
		// Like a child made by a Poll, capped at its parent's expiration.
		c.expires = expiresAt(now, d, e.calls[c.parentID])
	}
	c.restarts = 0
	c.lastStatus, c.lastErr = 0, nil
	e.newGeneration(c, now, b)
}

func (e *Engine) restart(c *call, cause *sdkv1.Error, now time.Time, b *store.Batch) {
	if int(c.restarts) >= e.cfg.MaxRestarts {
		msg := fmt.Sprintf("dispatch: the call's state stayed incompatible after %d restarts from its input", c.restarts)
		if e.cfg.MaxRestarts == 0 {
			msg = "dispatch: the call's state is incompatible, and restarts from its input are disabled (MaxRestarts < 0)"
		}
		if cause != nil {
			msg += ": " + cause.GetMessage()
		}
		cerr := serverError(sdkv1.Status_STATUS_INCOMPATIBLE_STATE, msg)
		e.complete(c, sdkv1.Status_STATUS_INCOMPATIBLE_STATE, &sdkv1.CallResult{Error: cerr}, now, b)
		return
	}
	c.restarts++
	c.lastStatus, c.lastErr = sdkv1.Status_STATUS_INCOMPATIBLE_STATE, cause
	e.newGeneration(c, now, b)
}

// poll suspends c on p: it records the state, makes the children and
// waits. An invalid poll resumes c at once with PollResult.error.
func (e *Engine) poll(c *call, p *sdkv1.Poll, now time.Time, b *store.Batch) {
	nowN := now.UnixNano()
	c.polled = true
	c.fails = 0
	c.lastStatus, c.lastErr = 0, nil
	c.stateAny, c.stateRaw = nil, nil
	switch st := p.GetState().(type) {
	case *sdkv1.Poll_TypedCoroutineState:
		c.stateAny = st.TypedCoroutineState
	case *sdkv1.Poll_CoroutineState:
		c.stateRaw = st.CoroutineState
	}
	for _, pc := range p.GetCalls() {
		if pc.GetEndpoint() == "" {
			pc.Endpoint = c.ep.url
		}
	}
	c.state = stNew
	e.disarm(c)
	gen := c.gen
	if err := e.validatePoll(p); err != nil {
		c.pollErr = serverError(sdkv1.Status_STATUS_INVALID_ARGUMENT, "dispatch: invalid poll, no call was dispatched: "+err.Error())
		c.minResults, c.maxResults, c.deadline = 0, 0, nowN
		b.Calls = append(b.Calls, c.row(nowN))
		e.submitFor(c, b, func() {
			if c.state == stNew && c.gen == gen {
				e.makeReady(c)
			}
		})
		return
	}
	c.pollErr = nil
	c.minResults, c.maxResults = pollLimits(p)
	c.deadline = noDeadline // no max_wait: wait for the results, or the expiration
	if w := p.GetMaxWait(); w != nil {
		c.deadline = after(now, w.AsDuration())
	}
	b.Calls = append(b.Calls, c.row(nowN))

	var children []*call
	if len(p.GetCalls()) > 0 {
		children = make([]*call, len(p.GetCalls()))
	}
	for i, pc := range p.GetCalls() {
		ch := e.newCall(pc, c, now)
		children[i] = ch
		b.Calls = append(b.Calls, ch.row(nowN))
	}
	if !e.cfg.NoEarlyStart && !e.commit.Behind() {
		// Early start: c suspends and its children start now, while b is
		// committed; every change that follows from them is submitted
		// after b (package documentation, "Early start"). Not while the
		// store is behind (retrying a failure, or a full group waiting):
		// what runs ahead of it stays bounded.
		e.submitFor(c, b, nil)
		c.state = stSuspended
		e.early += int64(len(children))
		e.suspendOrResume(c)
		for _, ch := range children {
			if ch.state == stNew {
				e.makeReady(ch)
			}
		}
		return
	}
	e.submitFor(c, b, func() {
		for _, ch := range children {
			if ch.state == stNew {
				e.makeReady(ch)
			}
		}
		if c.state == stNew && c.gen == gen {
			c.state = stSuspended
			e.suspendOrResume(c)
		}
	})
}

// maxPollCalls is the most calls one Poll may make (PROTOCOL.md: an SDK
// that needs more splits them over several polls). The protovalidate
// rules of the protos do not bound the list.
const maxPollCalls = 1000

// validatePoll checks p against the rules of the protos and PROTOCOL.md,
// its missing limits taken as their defaults (validate.go). The number of
// calls is checked first, so that a huge list is refused without
// validating each call.
func (e *Engine) validatePoll(p *sdkv1.Poll) error {
	if n := len(p.GetCalls()); n > maxPollCalls {
		return fmt.Errorf("calls: %d calls, at most %d per poll; split them over several polls", n, maxPollCalls)
	}
	if !e.surelyValidPoll(p) { // validate.go
		if err := e.validator.Validate(withDefaults(p)); err != nil {
			return err
		}
		for i, c := range p.GetCalls() {
			if err := e.CheckCall(c); err != nil {
				return fmt.Errorf("call %d: %w", i, err)
			}
		}
		e.knowEndpoints(p.GetCalls()...)
	}
	if lo, hi := pollLimits(p); lo > hi {
		return fmt.Errorf("min_results (%d) is above max_results (%d): a resume carries at most max_results results; lower min_results, or raise max_results or leave it out (%d)", lo, hi, DefaultMaxResults)
	}
	return nil
}

// suspendOrResume resumes a suspended c if enough results are ready, or
// arms its timer. Called with e.mu held.
func (e *Engine) suspendOrResume(c *call) {
	if len(c.inbox) >= int(c.minResults) {
		e.makeReady(c)
		return
	}
	e.arm(c, min(c.deadline, c.expires))
}

// complete records the final outcome of c and hands its result to its
// parent, if the parent still waits for this generation's results.
// Called with e.mu held.
func (e *Engine) complete(c *call, s sdkv1.Status, res *sdkv1.CallResult, now time.Time, b *store.Batch) {
	nowN := now.UnixNano()
	res.CorrelationId = c.corrID
	res.DispatchId = c.id
	c.lastStatus = s
	c.lastErr = res.GetError()
	row := c.row(nowN)
	row.State = store.Done
	row.CoroutineState, row.StateType, row.PollError = nil, "", nil
	if out := res.GetOutput(); out != nil {
		row.Output = marshal(out)
	}
	c.state = stDone
	e.disarm(c)
	delete(e.calls, c.id)
	b.Calls = append(b.Calls, row)
	if c.polled || len(c.inbox) > 0 {
		b.ClearInbox = append(b.ClearInbox, c.id)
	}
	c.inbox, c.inboxIDs, c.stateAny, c.stateRaw = nil, nil, nil, nil

	if c.parentID == "" && e.log.Debug().Enabled() {
		e.log.Debug().Str("id", c.id).Str("status", s.String()).Msg("root call done")
	}
	id := c.id
	e.finishing[id] = c.parentID
	finished := func() { e.finished(id, row) }
	p := e.calls[c.parentID]
	if p == nil || p.gen != c.parentGen {
		e.submitFor(c, b, finished)
		return
	}
	e.seq++
	b.Results = append(b.Results, store.Result{
		ParentID:  p.id,
		ParentGen: p.gen,
		ChildID:   id,
		Seq:       e.seq,
		Data:      marshal(res),
	})
	ready := p.state == stSuspended && p.pollErr == nil && len(p.inbox)+1 >= int(p.minResults)
	if ready && e.canHold(p, c) {
		// The result makes p ready: p resumes now, and b is committed
		// with its answer (hold.go).
		e.hold(p, id, res, b, finished, now)
		return
	}
	// Another result for p must not overtake one held for p.
	e.flush(p)
	gen := p.gen
	p.unsettled++
	e.submitFor(c, b, func() {
		p.unsettled--
		if p.state != stDone && p.gen == gen {
			p.inbox = append(p.inbox, res)
			p.inboxIDs = append(p.inboxIDs, id)
			if p.state == stSuspended && len(p.inbox) >= int(p.minResults) {
				e.makeReady(p)
			}
		}
		finished()
	})
}

func marshal(m proto.Message) []byte {
	if m == nil {
		return nil
	}
	data, _ := proto.Marshal(m)
	return data
}
