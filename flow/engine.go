package flow

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	sdkv1 "buf.build/gen/go/stealthrocket/dispatch-proto/protocolbuffers/go/dispatch/sdk/v1"
	"github.com/dispatchkit/dispatch/internal/flowrun"
	"github.com/dispatchkit/dispatch/internal/status"
	"github.com/dispatchkit/dispatch/serde"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
)

// Limits of the protocol and defaults of the engine.
const (
	// MaxInFlight is the most calls a flow has in flight at once, and the
	// most results a resume carries (the protocol's bound on min_results and
	// max_results). Larger fan-outs are split over several polls.
	MaxInFlight = 1000

	// DefaultMaxWait is how long a wait without a [Timeout] lets Dispatch
	// hold the flow before resuming it anyway; the flow then checks its
	// results and suspends again. It bounds how long a lost wake-up can
	// delay a flow.
	DefaultMaxWait = 5 * time.Minute
)

// machine interprets steps: a stack of continuation frames (bottom first)
// and, when suspended, the wait on top of them.
type machine struct {
	c      *Ctx
	stack  []frame
	wait   *waitState
	nextID uint64
}

func init() {
	flowrun.Serve = serve
	flowrun.Frames = stateFrames
}

// serve is the interpreter's entry point, registered with internal/flowrun
// for package dispatch and flowtest: it runs one RunRequest of a flow, its
// first (the request has an input, and start makes the first step) or a
// resume (the request has a poll result).
func serve(ctx context.Context, cfg flowrun.Config, req *sdkv1.RunRequest, start flowrun.Start) *sdkv1.RunResponse {
	c := newCtx(ctx, infoOf(req), cfg)
	if pr := req.GetPollResult(); pr != nil {
		return resume(c, pr)
	}
	if start == nil {
		return status.ExitError(fmt.Errorf("flow: %q was asked to start without a first step", c.info.Function))
	}
	return run(c, start, req.GetInput())
}

// stepper is any Step[T]: what a [flowrun.Start] returns.
type stepper interface{ stepNode() node }

func (s Step[T]) stepNode() node { return s.n }

// run starts a flow: it calls start, which decodes the input and calls the
// flow's function, and interprets the step it returns until the flow is
// done or suspends. It never panics: a panic in the function or a
// continuation fails the call with status PERMANENT_ERROR and the stack as
// traceback.
func run(c *Ctx, start flowrun.Start, input *anypb.Any) *sdkv1.RunResponse {
	m := &machine{c: c}
	return m.run(m.call(func() node {
		s, ok := start(c, input).(stepper)
		if !ok {
			return failNode{fmt.Errorf("flow: the first step of %q is not a flow.Step", c.info.Function)}
		}
		return s.stepNode()
	}, c.info.Function))
}

// resume continues a suspended flow with the results of a poll. The state
// must have been written by this build or an older one; otherwise the call
// fails with INCOMPATIBLE_STATE and a message naming the frame at fault.
func resume(c *Ctx, pr *sdkv1.PollResult) *sdkv1.RunResponse {
	data, err := stateFromPollResult(pr)
	if err != nil {
		return incompatible(c, err)
	}
	m, err := decodeState(data)
	if err != nil {
		return incompatible(c, err)
	}
	m.c = c
	if m.wait == nil {
		return incompatible(c, &IncompatibleStateError{Frame: -1, Err: errors.New("the state is not suspended on a wait")})
	}
	if e := pr.GetError(); e != nil {
		// None of the poll's calls was dispatched: the wait fails as a whole.
		err := resultError(e)
		m.wait = nil
		return m.run(failNode{fmt.Errorf("flow: Dispatch could not make the calls: %w", err)})
	}
	if n, done := m.absorb(pr.GetResults()); done {
		m.wait = nil
		return m.run(n)
	}
	return m.suspend()
}

// incompatible answers a state this build cannot resume, err (an
// *IncompatibleStateError), and logs a warning naming the frame and the
// reason, so that the program that hit it says so. By default the call
// fails with INCOMPATIBLE_STATE, and Dispatch restarts it from its input:
// whatever the flow did before (calls made, side effects of its
// continuations) happens again. With Config.FailOnIncompatible
// (dispatch.FailOnIncompatible) the call fails with PERMANENT_ERROR
// instead, and is not restarted.
func incompatible(c *Ctx, err error) *sdkv1.RunResponse {
	l := c.Logger()
	ev := l.Warn().Err(err)
	var ise *IncompatibleStateError
	if errors.As(err, &ise) && ise.Frame >= 0 {
		ev = ev.Int("frame", ise.Frame).Str("continuation", ise.Name)
	}
	if c.cfg.FailOnIncompatible {
		ev.Msg("flow: the saved state is incompatible with this build: the call fails, and is not restarted from its input (dispatch.FailOnIncompatible)")
		return status.ExitError(status.WithStatus(fmt.Errorf("%w (dispatch.FailOnIncompatible: the call fails rather than restart from its input)", err), status.PermanentError))
	}
	ev.Msg("flow: the saved state is incompatible with this build: Dispatch restarts the call from its input, so what the flow did before runs again (dispatch.FailOnIncompatible fails the call instead)")
	return status.ExitError(err)
}

// call runs user code, turning a panic into a failure and a zero Step into
// an error naming who returned it.
func (m *machine) call(fn func() node, who string) (n node) {
	if err := status.CatchPanic(func() error { n = fn(); return nil }); err != nil {
		return failNode{err}
	}
	if n == nil {
		n = failNode{fmt.Errorf("flow: %q returned a zero Step: return flow.Done(v), flow.Fail(err) or a combinator", who)}
	}
	return n
}

// run interprets n until the flow exits or suspends.
func (m *machine) run(n node) *sdkv1.RunResponse {
	for {
		switch x := n.(type) {
		case doneNode:
			if len(m.stack) == 0 {
				return m.exit(x.v)
			}
			f := m.pop()
			n = m.call(func() node { return f.def.apply(m.c, f.env, x.v, nil) }, f.def.name)
		case failNode:
			f, ok := m.popCatcher()
			if !ok {
				return status.ExitError(x.err)
			}
			n = m.call(func() node { return f.def.apply(m.c, f.env, value{}, x.err) }, f.def.name)
		case bindNode:
			if x.k.def == nil {
				n = failNode{errors.New("flow: Bind or a combinator was given a zero Cont: build continuations with flow.Then, flow.Handle or ContWith.With")}
				continue
			}
			m.stack = append(m.stack, x.k)
			n = x.inner
		case waitNode:
			var done bool
			if n, done = m.begin(x); !done {
				return m.suspend()
			}
		case tailNode:
			if len(m.stack) > 0 {
				n = failNode{fmt.Errorf("flow: TailCall to %q while %d continuations wait (top: %q): a tail call replaces the whole call, so it must be the flow's last step", x.call.Function, len(m.stack), m.stack[len(m.stack)-1].def.name)}
				continue
			}
			return m.exitTail(x.call)
		default:
			return status.ExitError(fmt.Errorf("flow: unknown step %T", n))
		}
	}
}

func (m *machine) pop() frame {
	f := m.stack[len(m.stack)-1]
	m.stack = m.stack[:len(m.stack)-1]
	return f
}

// popCatcher pops frames up to and including the first that handles errors.
func (m *machine) popCatcher() (frame, bool) {
	for len(m.stack) > 0 {
		if f := m.pop(); f.def.catches {
			return f, true
		}
	}
	return frame{}, false
}

// begin starts a wait. It returns the resulting node and true when the wait
// is satisfied at once (an empty Gather), or false when the flow suspends.
func (m *machine) begin(x waitNode) (node, bool) {
	n := len(x.calls)
	if n == 0 {
		switch x.mode {
		case modeAll:
			return doneNode{value{wire: wireValue{isList: true}}}, true
		case modeAny, modeRace:
			return failNode{fmt.Errorf("flow: %s of no calls: there is nothing to wait for", x.mode)}, true
		}
	}
	w := &waitState{waitDoc: waitDoc{Mode: uint8(x.mode), Base: m.nextID + 1, N: n, Seen: make([]byte, (n+7)/8)}, pending: x.calls}
	m.nextID += uint64(n)
	if x.timeout > 0 {
		w.Deadline = m.c.Now().Add(x.timeout).UnixNano()
		w.Timeout = int64(x.timeout)
	}
	m.wait = w
	return nil, false
}

// absorb records results and reports whether the wait is now satisfied,
// with the node it produces. Results for other calls (losers of an earlier
// wait, duplicates of a result already seen) are ignored.
func (m *machine) absorb(results []*sdkv1.CallResult) (node, bool) {
	w := m.wait
	for _, r := range results {
		id := r.GetCorrelationId()
		if id < w.Base || id >= w.Base+uint64(w.Sent) {
			continue
		}
		i := int(id - w.Base)
		if w.seen(i) {
			continue
		}
		w.mark(i)
		failed := r.GetError() != nil
		switch mode(w.Mode) {
		case modeOne, modeRace:
			if failed {
				return failNode{resultError(r.GetError())}, true
			}
			return doneNode{value{wire: wireValue{one: r.GetOutput()}}}, true
		case modeAll:
			if failed {
				return failNode{fmt.Errorf("flow: gather: call %d of %d failed: %w", i, w.N, resultError(r.GetError()))}, true
			}
			t := -1
			if out := r.GetOutput(); out != nil {
				t = w.typeIndex(out.GetTypeUrl())
			}
			w.Results = append(w.Results, resultDoc{Index: i, Type: t, Value: r.GetOutput().GetValue()})
		case modeAny:
			if !failed {
				return doneNode{value{wire: wireValue{one: r.GetOutput()}}}, true
			}
			w.Results = append(w.Results, resultDoc{Index: i, Type: -1, Err: newErrDoc(r.GetError())})
		}
	}
	if mode(w.Mode) == modeSleep {
		if !m.c.Now().Before(w.deadline()) {
			return doneNode{value{set: true, v: struct{}{}}}, true
		}
		return nil, false
	}
	if w.arrived() == w.N {
		slices.SortFunc(w.Results, func(a, b resultDoc) int { return a.Index - b.Index })
		switch mode(w.Mode) {
		case modeAll:
			list := make([]*anypb.Any, len(w.Results))
			for i, r := range w.Results {
				if r.Type >= 0 {
					list[i] = &anypb.Any{TypeUrl: w.Types[r.Type], Value: r.Value}
				}
			}
			return doneNode{value{wire: wireValue{list: list, isList: true}}}, true
		case modeAny:
			return failNode{w.joinErrors(nil)}, true
		}
	}
	if d := w.deadline(); !d.IsZero() && !m.c.Now().Before(d) {
		err := fmt.Errorf("%w: %s waited %s, %d of %d results arrived", errTimedOut, mode(w.Mode), time.Duration(w.Timeout), w.arrived(), w.N)
		err = status.WithStatus(err, status.Timeout)
		if mode(w.Mode) == modeAny && len(w.Results) > 0 {
			err = w.joinErrors(err)
		}
		return failNode{err}, true
	}
	return nil, false
}

// joinErrors joins the failures of an Any in argument order, after first.
func (w *waitState) joinErrors(first error) error {
	errs := make([]error, 0, len(w.Results)+1)
	if first != nil {
		errs = append(errs, first)
	}
	for _, r := range w.Results {
		errs = append(errs, fmt.Errorf("call %d: %w", r.Index, resultError(r.Err.proto())))
	}
	return fmt.Errorf("flow: any: every call failed: %w", errors.Join(errs...))
}

// suspend sends queued calls (keeping at most MaxInFlight in flight),
// prints the trace, serializes the state and returns the Poll.
//
// The trace is printed once the state is saved, or failed to be: the dump
// shows the frames and calls as Go values either way, and says which calls
// were sent, or that none was because the state could not be saved.
func (m *machine) suspend() *sdkv1.RunResponse {
	w := m.wait
	send := min(MaxInFlight-w.inFlight(), len(w.pending))
	state, calls, err := m.save(send)
	if m.c.cfg.Trace != nil {
		m.dump(send, err)
	}
	if err != nil {
		return status.ExitError(status.WithStatus(err, status.PermanentError))
	}
	w.pending = w.pending[send:]
	w.Sent += send
	minResults := 1
	if mode(w.Mode) == modeAll {
		minResults = max(1, min(w.inFlight(), MaxInFlight))
	}
	maxWait := DefaultMaxWait
	if d := w.deadline(); !d.IsZero() {
		maxWait = max(d.Sub(m.c.Now()), time.Second)
	}
	return &sdkv1.RunResponse{
		Status: sdkv1.Status_STATUS_OK,
		Directive: &sdkv1.RunResponse_Poll{Poll: &sdkv1.Poll{
			State:      &sdkv1.Poll_TypedCoroutineState{TypedCoroutineState: stateAny(state)},
			Calls:      calls,
			MinResults: int32(minResults),
			MaxResults: MaxInFlight,
			MaxWait:    durationpb.New(maxWait),
		}},
	}
}

// save encodes the first send pending calls and the state as it will be
// once they are sent; the wait is left as it was, for the trace, and the
// caller marks the calls sent.
func (m *machine) save(send int) ([]byte, []*sdkv1.Call, error) {
	w := m.wait
	calls := make([]*sdkv1.Call, send)
	for i := range send {
		c, err := w.pending[i].toProto(w.Base + uint64(w.Sent+i))
		if err != nil {
			return nil, nil, err
		}
		calls[i] = c
	}
	rest := w.pending
	w.pending = w.pending[send:]
	w.Sent += send
	state, err := m.encodeState()
	w.pending = rest
	w.Sent -= send
	if err != nil {
		return nil, nil, err
	}
	return state, calls, nil
}

// exit ends the call with v as its result.
func (m *machine) exit(v value) *sdkv1.RunResponse {
	var out *anypb.Any
	var err error
	if v.set {
		out, err = serde.Marshal(v.v)
	} else {
		out, err = v.wire.toAny()
	}
	if err != nil {
		return status.ExitError(status.WithStatus(fmt.Errorf("flow: cannot encode the result of %q: %w", m.c.info.Function, err), status.PermanentError))
	}
	return &sdkv1.RunResponse{
		Status:    sdkv1.Status_STATUS_OK,
		Directive: &sdkv1.RunResponse_Exit{Exit: &sdkv1.Exit{Result: &sdkv1.CallResult{Output: out}}},
	}
}

func (m *machine) exitTail(c callSpec) *sdkv1.RunResponse {
	pc, err := c.toProto(0)
	if err != nil {
		return status.ExitError(status.WithStatus(err, status.PermanentError))
	}
	return &sdkv1.RunResponse{
		Status:    sdkv1.Status_STATUS_OK,
		Directive: &sdkv1.RunResponse_Exit{Exit: &sdkv1.Exit{TailCall: pc}},
	}
}

// resultError turns the error of a call result into a Go error that keeps
// its status, type and message.
func resultError(e *sdkv1.Error) error { return status.FromWire(e) }
