package flowtest

import (
	"context"
	"fmt"
	"io"
	"slices"
	"time"

	sdkv1 "buf.build/gen/go/stealthrocket/dispatch-proto/protocolbuffers/go/dispatch/sdk/v1"
	"github.com/rs/zerolog"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/dispatchkit/dispatch/flow"
	"github.com/dispatchkit/dispatch/internal/flowrun"
	"github.com/dispatchkit/dispatch/internal/status"
	"github.com/dispatchkit/dispatch/serde"
)

// The local server's defaults (package server), which flowtest follows.
const (
	// DefaultExpiration is how long a call may take, retries included,
	// when it sets no expiration (flow.Call.WithExpiration, [Expiration]
	// for the workflow under test). A child call never outlives its
	// parent.
	DefaultExpiration = time.Hour
	// MinBackoff and MaxBackoff bound the back-off between the attempts of
	// a call: MinBackoff after the first failure, doubling, capped at
	// MaxBackoff. The server draws each wait at random in [d/2, d);
	// flowtest waits d, the longest, so that runs are reproducible.
	MinBackoff = 100 * time.Millisecond
	MaxBackoff = 30 * time.Second
	// MaxRestarts is how many times a call whose state is incompatible
	// (INCOMPATIBLE_STATE) restarts from its input before it fails.
	MaxRestarts = 3
)

// maxResumes bounds a run that never ends.
const maxResumes = 100000

// mockFunc is a mock: one attempt of a call with its input.
type mockFunc func(in *anypb.Any, attempt int) (*anypb.Any, error)

// driver plays Dispatch's part: the options of a run, shared by the
// workflow under test and the child workflows it calls.
type driver struct {
	mocks      map[string]mockFunc
	hang       map[string]bool
	latency    map[string]func(*anypb.Any) time.Duration
	order      Order
	dup        bool
	raw        bool
	refuseAt   int
	refuseErr  error
	badStateAt int
	start      time.Time
	expiration time.Duration
	trace      io.Writer
	logger     zerolog.Logger

	nextID int // dispatch ids handed out: test-1, test-2, ...
}

func newDriver(opts []Option) *driver {
	d := &driver{
		mocks:      map[string]mockFunc{},
		hang:       map[string]bool{},
		latency:    map[string]func(*anypb.Any) time.Duration{},
		start:      time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		expiration: DefaultExpiration,
	}
	for _, o := range opts {
		o.apply(d)
	}
	return d
}

func (d *driver) newID() string {
	d.nextID++
	return fmt.Sprintf("test-%d", d.nextID)
}

// workflow is what a run serves: the workflow under test, or a function
// it calls.
type workflow struct {
	name  string
	serve func(ctx context.Context, cfg flowrun.Config, req *sdkv1.RunRequest) *sdkv1.RunResponse
}

// run is one call as Dispatch runs it: its attempts, its suspensions, its
// inbox of results and its clock.
type run struct {
	d        *driver
	ctx      context.Context
	w        workflow
	root     bool // the workflow under test: injections apply to it
	id       string
	parentID string
	rootID   string
	created  time.Time
	expires  time.Time
	input    *anypb.Any

	now      time.Time
	inbox    []pending
	seq      int
	polls    int
	fails    int // failed attempts in a row
	restarts int
	inflight int
	rep      Report
	history  []suspension

	// onPoll, if set, is called after each poll of a root run, with the
	// request that resumes it: CrashEverywhere saves it there.
	onPoll func(r *run, next *sdkv1.RunRequest)
}

// pending is a result Dispatch holds for the call, ready at its time.
type pending struct {
	res *sdkv1.CallResult
	at  time.Time
	seq int
}

// suspension is what a run did at one await: the frames it suspended in
// and the calls it made, for CrashEverywhere's comparisons.
type suspension struct {
	Frames []string
	Calls  []callDoc
}

type callDoc struct {
	Function string
	Endpoint string
	TypeURL  string
	Input    []byte
}

// outcome is the final outcome of a call, and when it came.
type outcome struct {
	status sdkv1.Status
	result *sdkv1.CallResult
	tail   *sdkv1.Call
	at     time.Time
}

func (d *driver) newRoot(ctx context.Context, w workflow, input *anypb.Any) *run {
	id := d.newID()
	return &run{d: d, ctx: ctx, w: w, root: true, id: id, rootID: id, created: d.start, expires: d.start.Add(d.expiration), input: input, now: d.start}
}

// first is the request of a first attempt, with the call's input.
func (r *run) first() *sdkv1.RunRequest {
	return r.request(&sdkv1.RunRequest{Directive: &sdkv1.RunRequest_Input{Input: r.input}})
}

// request fills the envelope of req as Dispatch does.
func (r *run) request(req *sdkv1.RunRequest) *sdkv1.RunRequest {
	req.Function = r.w.name
	req.DispatchId = r.id
	req.ParentDispatchId = r.parentID
	req.RootDispatchId = r.rootID
	req.CreationTime = timestamppb.New(r.created)
	req.ExpirationTime = timestamppb.New(r.expires)
	return req
}

func (r *run) serve(req *sdkv1.RunRequest) *sdkv1.RunResponse {
	cfg := flowrun.Config{Now: func() time.Time { return r.now }, Trace: r.d.trace, Logger: r.d.logger}
	return r.w.serve(r.ctx, cfg, req)
}

// loop serves req and what follows it until the call's final outcome, as
// the server does: it retries attempts that fail with a status the server
// retries, restarts the call from its input on INCOMPATIBLE_STATE, and
// answers polls with the results of the calls, on the virtual clock.
func (r *run) loop(req *sdkv1.RunRequest) outcome {
	resp := r.serve(req)
	for {
		if r.rep.Resumes > maxResumes {
			return r.fail(sdkv1.Status_STATUS_PERMANENT_ERROR, fmt.Sprintf("flowtest: %q resumed %d times without finishing", r.w.name, maxResumes))
		}
		exit, poll, st := resp.GetExit(), resp.GetPoll(), resp.GetStatus()
		switch {
		case exit.GetTailCall() != nil:
			return outcome{status: sdkv1.Status_STATUS_OK, result: &sdkv1.CallResult{}, tail: exit.GetTailCall(), at: r.now}

		case status.Status(st).Retried() && !r.d.raw:
			r.fails++
			last := exit.GetResult().GetError().GetMessage()
			at := r.now.Add(backoff(r.fails))
			if !at.Before(r.expires) {
				return r.expired(r.fails, last) // at the last failure, as the server does
			}
			r.rep.Retries++
			r.rep.Slept += at.Sub(r.now)
			r.now = at
			resp = r.serve(req)

		case st == sdkv1.Status_STATUS_INCOMPATIBLE_STATE && !r.d.raw:
			if r.restarts >= MaxRestarts {
				return r.fail(st, fmt.Sprintf("flowtest: the state of %q stayed incompatible after %d restarts from its input: %s", r.w.name, r.restarts, exit.GetResult().GetError().GetMessage()))
			}
			r.restarts++
			r.rep.Restarts++
			r.fails = 0
			r.inbox, r.inflight = nil, 0 // the children of the old generation are orphaned
			req = r.first()
			resp = r.serve(req)

		case poll != nil && st == sdkv1.Status_STATUS_OK:
			r.fails = 0
			next, out, done := r.poll(poll)
			if done {
				return out
			}
			if r.onPoll != nil {
				r.onPoll(r, next)
			}
			req = next
			resp = r.serve(req)

		case exit != nil:
			res := exit.GetResult()
			if res == nil {
				res = &sdkv1.CallResult{}
			}
			if st != sdkv1.Status_STATUS_OK && res.GetError() == nil {
				res.Error = &sdkv1.Error{Type: status.Status(st).String(), Message: "function returned " + status.Status(st).String()}
			}
			return outcome{status: st, result: res, at: r.now}

		default:
			return r.fail(sdkv1.Status_STATUS_INVALID_RESPONSE, fmt.Sprintf("flowtest: %q answered neither exit nor poll (status %s)", r.w.name, status.Status(st)))
		}
	}
}

func (r *run) fail(st sdkv1.Status, msg string) outcome {
	return outcome{status: st, result: &sdkv1.CallResult{Error: &sdkv1.Error{Type: status.Status(st).String(), Message: msg}}, at: r.now}
}

// expired is the outcome of a call that reached its expiration.
func (r *run) expired(attempts int, last string) outcome {
	msg := fmt.Sprintf("flowtest: call to %q expired at %s", r.w.name, r.expires.UTC().Format(time.RFC3339Nano))
	if attempts > 0 {
		msg += fmt.Sprintf(" after %d attempts", attempts)
	}
	if last != "" {
		msg += "; last error: " + last
	}
	if r.root {
		msg += fmt.Sprintf(" (it expires %s after it started; flowtest.Expiration sets another)", r.d.expiration)
	}
	return r.fail(sdkv1.Status_STATUS_TIMEOUT, msg)
}

// poll answers a Poll: it makes the calls, waits on the virtual clock until
// min_results results are ready or max_wait has passed, and returns the
// request that resumes the call. done is set, with the outcome, when the
// call expires first.
func (r *run) poll(p *sdkv1.Poll) (next *sdkv1.RunRequest, out outcome, done bool) {
	r.polls++
	pr := &sdkv1.PollResult{}
	var state []byte
	if s := p.GetTypedCoroutineState(); s != nil {
		pr.State = &sdkv1.PollResult_TypedCoroutineState{TypedCoroutineState: s}
		state = s.GetValue()
	} else {
		pr.State = &sdkv1.PollResult_CoroutineState{CoroutineState: p.GetCoroutineState()}
		state = p.GetCoroutineState()
	}
	r.rep.States = append(r.rep.States, len(state))
	r.rep.MaxState = max(r.rep.MaxState, len(state))
	if r.root {
		s := suspension{}
		if flowrun.Frames != nil {
			s.Frames, _ = flowrun.Frames(state)
		}
		for _, c := range p.GetCalls() {
			s.Calls = append(s.Calls, callDoc{Function: c.GetFunction(), Endpoint: c.GetEndpoint(), TypeURL: c.GetInput().GetTypeUrl(), Input: c.GetInput().GetValue()})
		}
		r.history = append(r.history, s)
	}

	if r.root && r.polls == r.d.refuseAt {
		// None of the poll's calls is made; the call resumes at once.
		_, pr.Error = status.ToProto(r.d.refuseErr)
	} else {
		for _, c := range p.GetCalls() {
			r.rep.Calls++
			if res, at, ok := r.call(c); ok {
				r.seq++
				r.inbox = append(r.inbox, pending{res: res, at: at, seq: r.seq})
			}
		}
		r.inflight += len(p.GetCalls())
		r.rep.MaxPending = max(r.rep.MaxPending, r.inflight)

		maxWait := flow.DefaultMaxWait
		if p.GetMaxWait() != nil {
			maxWait = max(p.GetMaxWait().AsDuration(), time.Second)
		}
		need := 1
		if r.d.order == AllAtOnce {
			need = max(1, int(p.GetMinResults()))
		}
		at := r.now.Add(maxWait)
		if need <= len(r.inbox) {
			times := make([]time.Time, len(r.inbox))
			for i, p := range r.inbox {
				times[i] = p.at
			}
			slices.SortFunc(times, time.Time.Compare)
			if t := times[need-1]; t.Before(at) {
				at = maxTime(t, r.now)
			}
		}
		if !at.Before(r.expires) {
			r.rep.Slept += r.expires.Sub(r.now)
			r.now = r.expires
			return nil, r.expired(0, ""), true
		}
		r.rep.Slept += at.Sub(r.now)
		r.now = at
		batch := r.pick(int(p.GetMaxResults()))
		r.inflight -= len(batch)
		for _, b := range batch {
			pr.Results = append(pr.Results, b)
			if r.d.dup {
				pr.Results = append(pr.Results, b)
			}
		}
	}
	r.rep.Resumes++
	if r.root && r.polls == r.d.badStateAt {
		pr.State = &sdkv1.PollResult_TypedCoroutineState{TypedCoroutineState: unreadableState()}
	}
	return r.request(&sdkv1.RunRequest{Directive: &sdkv1.RunRequest_PollResult{PollResult: pr}}), outcome{}, false
}

// pick takes the results of the next resume out of the inbox: those ready
// now, in the order of delivery.
func (r *run) pick(maxResults int) []*sdkv1.CallResult {
	var ready []int // indexes in the inbox, in call order
	for i, p := range r.inbox {
		if !p.at.After(r.now) {
			ready = append(ready, i)
		}
	}
	n := len(ready)
	if r.d.order != AllAtOnce {
		n = min(n, 1)
	}
	n = min(n, max(maxResults, 1))
	chosen := ready[:n]
	if r.d.order == Reversed {
		chosen = ready[len(ready)-n:]
	}
	batch := make([]*sdkv1.CallResult, 0, n)
	for _, i := range chosen {
		batch = append(batch, r.inbox[i].res)
	}
	for _, i := range slices.Backward(chosen) {
		r.inbox = slices.Delete(r.inbox, i, i+1)
	}
	return batch
}

// call makes one call of a poll, as the server does: its attempts are
// retried after a back-off while they fail with a status the server
// retries, until one succeeds, one fails for good, or the call expires. It
// returns the call's result and when it is ready, or false for a call
// that never completes.
func (r *run) call(c *sdkv1.Call) (*sdkv1.CallResult, time.Time, bool) {
	id := r.d.newID()
	start := r.now
	exp := start.Add(DefaultExpiration)
	if d := c.GetExpiration(); d != nil && d.AsDuration() > 0 {
		exp = start.Add(d.AsDuration())
	}
	exp = minTime(exp, r.expires)
	res := func(out *anypb.Any, e *sdkv1.Error) *sdkv1.CallResult {
		return &sdkv1.CallResult{CorrelationId: c.GetCorrelationId(), DispatchId: id, Output: out, Error: e}
	}
	timeout := func(msg string) (*sdkv1.CallResult, time.Time, bool) {
		return res(nil, &sdkv1.Error{Type: status.Timeout.String(), Message: msg}), exp, true
	}
	name := c.GetFunction()
	expiredAt := exp.UTC().Format(time.RFC3339Nano)
	if r.d.hang[name] {
		return timeout(fmt.Sprintf("flowtest: call to %q expired at %s: it hangs (flowtest.Hang)", name, expiredAt))
	}

	mock, mocked := r.d.mocks[name]
	var fn flowrun.Function
	if !mocked {
		var ok bool
		if flowrun.Lookup != nil {
			fn, ok = flowrun.Lookup(name)
		}
		if !ok {
			err := status.WithStatus(fmt.Errorf("flowtest: no mock for function %q, and no function of that name is registered in this program: add flowtest.Mock(%q, ...)", name, name), status.NotFound)
			_, e := status.ToProto(err)
			return res(nil, e), start, true
		}
		if fn.Flow {
			// A child workflow: a call of its own, run to its end.
			child := &run{d: r.d, ctx: r.ctx, w: workflow{name: name, serve: fn.Serve}, id: id, parentID: r.id, rootID: r.rootID, created: start, expires: exp, input: c.GetInput(), now: start}
			out := child.loop(child.first())
			if out.tail != nil {
				return res(nil, &sdkv1.Error{Type: status.PermanentError.String(), Message: fmt.Sprintf("flowtest: child workflow %q ended with a tail call to %q, which flowtest does not follow", name, out.tail.GetFunction())}), out.at, true
			}
			return res(out.result.GetOutput(), out.result.GetError()), out.at, true
		}
	}

	t := start
	for attempt := 1; ; attempt++ {
		var out *anypb.Any
		var st sdkv1.Status
		var e *sdkv1.Error
		if mocked {
			o, err := mock(c.GetInput(), attempt)
			st, e = status.ToProto(err)
			if err == nil {
				out = o
			}
		} else {
			req := &sdkv1.RunRequest{Function: name, DispatchId: id, ParentDispatchId: r.id, RootDispatchId: r.rootID, CreationTime: timestamppb.New(start), ExpirationTime: timestamppb.New(exp), Directive: &sdkv1.RunRequest_Input{Input: c.GetInput()}}
			resp := fn.Serve(r.ctx, flowrun.Config{Now: func() time.Time { return t }, Trace: r.d.trace, Logger: r.d.logger}, req)
			st, out, e = resp.GetStatus(), resp.GetExit().GetResult().GetOutput(), resp.GetExit().GetResult().GetError()
			if st != sdkv1.Status_STATUS_OK && e == nil {
				e = &sdkv1.Error{Type: status.Status(st).String(), Message: "function returned " + status.Status(st).String()}
			}
		}
		if l := r.d.latency[name]; l != nil {
			t = t.Add(l(c.GetInput()))
		}
		if !t.Before(exp) {
			return timeout(fmt.Sprintf("flowtest: call to %q expired at %s during attempt %d", name, expiredAt, attempt))
		}
		if st == sdkv1.Status_STATUS_OK {
			return res(out, nil), t, true
		}
		if r.d.raw || !status.Status(st).Retried() {
			return res(nil, e), t, true
		}
		next := t.Add(backoff(attempt))
		if !next.Before(exp) {
			// The server gives up when the next attempt would come too
			// late, at the last failure.
			r, _, ok := timeout(fmt.Sprintf("flowtest: call to %q expired at %s after %d attempts; last error: %s", name, expiredAt, attempt, e.GetMessage()))
			return r, t, ok
		}
		r.rep.Retries++
		t = next
	}
}

// backoff is the wait after the fails-th failure in a row: MinBackoff,
// doubling, capped at MaxBackoff (the longest the server may draw).
func backoff(fails int) time.Duration {
	d := MinBackoff
	for i := 1; i < fails && d < MaxBackoff; i++ {
		d *= 2
	}
	return min(d, MaxBackoff)
}

// unreadableState is a state this build cannot read: one of a newer format.
func unreadableState() *anypb.Any {
	b, err := serde.MarshalCBOR(map[int]int{1: flow.StateVersion + 1})
	if err != nil {
		panic(err) // a map of ints encodes
	}
	return &anypb.Any{TypeUrl: flow.StateTypeURL, Value: b}
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
