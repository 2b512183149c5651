package flowtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	sdkv1 "buf.build/gen/go/stealthrocket/dispatch-proto/protocolbuffers/go/dispatch/sdk/v1"
	"github.com/rs/zerolog"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/dispatchkit/dispatch"
	"github.com/dispatchkit/dispatch/flow"
	"github.com/dispatchkit/dispatch/internal/flowrun"
	"github.com/dispatchkit/dispatch/internal/status"
	"github.com/dispatchkit/dispatch/serde"
)

// An Option configures a run.
//
// Option is sealed: only this package implements it, so that options can
// grow without breaking anyone.
type Option interface{ apply(*driver) }

type optionFunc func(*driver)

func (f optionFunc) apply(d *driver) { f(d) }

// Mock serves calls to the function called name with fn, in place of a
// function of that name registered in the program, if any. fn's error, if
// any, is the attempt's outcome, with its status (see the markers of
// package dispatch): an error the server retries (dispatch.Temporary, a
// timeout, a network error) makes flowtest call fn again after a back-off,
// as the server does, unless [RawOutcomes] is given.
func Mock[I, O any](name string, fn func(I) (O, error)) Option {
	return MockAttempt(name, func(in I, _ int) (O, error) { return fn(in) })
}

// MockAttempt is [Mock] for a mock that depends on the attempt: fn receives
// the number of the attempt of this call, from 1, so that a function that
// fails twice with a temporary error before it succeeds is
//
//	flowtest.MockAttempt("book_hotel", func(h Hotel, attempt int) (string, error) {
//		if attempt <= 2 {
//			return "", dispatch.Temporary(errors.New("busy"))
//		}
//		return "h-1", nil
//	})
//
// Unlike a counter kept by the mock, the attempt number survives the
// crashes of [CrashEverywhere], as the server's count does.
func MockAttempt[I, O any](name string, fn func(in I, attempt int) (O, error)) Option {
	return optionFunc(func(d *driver) {
		d.mocks[name] = func(in *anypb.Any, attempt int) (*anypb.Any, error) {
			var i I
			if err := serde.Unmarshal(in, &i); err != nil {
				return nil, status.WithStatus(fmt.Errorf("flowtest: mock of %q: input: %w", name, err), status.InvalidArgument)
			}
			o, err := fn(i, attempt)
			if err != nil {
				return nil, err
			}
			return serde.Marshal(o)
		}
	})
}

// Latency makes every attempt of a call to the function called name take
// d(in) on the virtual clock, in is the call's input. Its result, or the
// next attempt, comes that much later; an attempt that would end past the
// call's expiration fails the call with TIMEOUT at its expiration. Use it
// to test timeouts ([flow.Timeout]) and races without waiting for them.
func Latency[I any](name string, d func(in I) time.Duration) Option {
	return optionFunc(func(dr *driver) {
		dr.latency[name] = func(in *anypb.Any) time.Duration {
			var i I
			if err := serde.Unmarshal(in, &i); err != nil {
				return 0 // the mock or the function reports the input
			}
			return max(d(i), 0)
		}
	})
}

// Hang makes calls to the function called name never complete, as a
// function that hangs until its expiration: each fails with TIMEOUT at its
// expiration, on the virtual clock. A flow waiting on them moves on before
// that only through a timeout or another call.
func Hang(name string) Option {
	return optionFunc(func(d *driver) { d.hang[name] = true })
}

// Order says in which order and batches results reach the flow.
type Order int

const (
	// AllAtOnce resumes the flow when the poll's min_results results are
	// ready (or its max_wait has passed) and delivers every ready result
	// in one resume (up to the poll's max_results), in call order, as the
	// server does.
	AllAtOnce Order = iota
	// OneAtATime delivers one result per resume, the first in call order
	// of those ready, as soon as one is ready.
	OneAtATime
	// Reversed delivers one result per resume, the last in call order of
	// those ready, as soon as one is ready.
	Reversed
)

// Deliver sets the order of delivery (default AllAtOnce).
func Deliver(o Order) Option { return optionFunc(func(d *driver) { d.order = o }) }

// Duplicates delivers every result twice, as an at-least-once scheduler
// may.
func Duplicates() Option { return optionFunc(func(d *driver) { d.dup = true }) }

// RawOutcomes delivers every outcome as it is: the first attempt's result of
// each call reaches the flow whatever its status, and the flow's own
// failures and incompatible states end the run, without the retries and
// restarts of the server. It is how flowtest behaved before it followed
// the server's rules; use it to test how a flow handles an error that, run
// by the server, would have been retried away.
func RawOutcomes() Option { return optionFunc(func(d *driver) { d.raw = true }) }

// RefusePoll makes Dispatch refuse the n-th poll of the flow (from 1):
// none of its calls is made, and the flow resumes at once with err in
// PollResult.error, as when the server rejects a poll (an invalid call, a
// quota). The wait fails as a whole, and the continuation receives err,
// with its status. It is not a crash: the flow keeps its state and goes
// on; see [CrashEverywhere] for crashes.
func RefusePoll(n int, err error) Option {
	return optionFunc(func(d *driver) { d.refuseAt, d.refuseErr = n, err })
}

// PollError is RefusePoll.
//
// Deprecated: use [RefusePoll], which says what it does: Dispatch refuses
// the poll's calls. It does not simulate a crash; [CrashEverywhere] does.
func PollError(n int, err error) Option { return RefusePoll(n, err) }

// IncompatibleState gives the flow, when it resumes after its n-th poll
// (from 1), a state this build cannot read, as after a deployment that
// renamed a continuation the state refers to. The flow answers
// INCOMPATIBLE_STATE and, as the server does, flowtest restarts it from
// its input (at most [MaxRestarts] times): what it did before runs again.
// A workflow registered with dispatch.FailOnIncompatible fails with
// PERMANENT_ERROR instead.
func IncompatibleState(n int) Option {
	return optionFunc(func(d *driver) { d.badStateAt = n })
}

// Clock starts the virtual clock at t (default 2026-01-01T00:00:00Z).
func Clock(t time.Time) Option { return optionFunc(func(d *driver) { d.start = t }) }

// Expiration sets how long the flow under test may run before it fails
// with TIMEOUT, as dispatching it with flow.Call.WithExpiration does
// (default [DefaultExpiration], the server's: 1 hour). Its calls never
// outlive it.
func Expiration(d time.Duration) Option {
	return optionFunc(func(dr *driver) {
		if d > 0 {
			dr.expiration = d
		}
	})
}

// Trace writes the frame dumps of the run to w (see package trace).
func Trace(w io.Writer) Option {
	return optionFunc(func(d *driver) { d.trace = w })
}

// Logger gives the interpreter a logger, for its warnings (an incompatible
// state) and the flow's own events (flow.Ctx.Logger). By default nothing is
// logged.
func Logger(l zerolog.Logger) Option {
	return optionFunc(func(d *driver) { d.logger = l })
}

// Report describes a run.
type Report struct {
	Resumes    int           // resumes after the first run
	Calls      int           // calls the flow made
	MaxState   int           // largest state in bytes
	States     []int         // size of the state at each suspension
	Slept      time.Duration // virtual time that passed
	TailCall   *sdkv1.Call   // the tail call the flow ended with, if any
	MaxPending int           // most calls in flight at once
	Retries    int           // attempts retried, of the flow and of its calls
	Restarts   int           // restarts of the flow from its input
}

// Run runs the workflow fn, registered with dispatch.Flow, with input in,
// to completion, as Dispatch would, and returns its result decoded into O,
// or its error: a *dispatcherr.Error keeping the status, as the workflow's
// caller would receive it. fn may also be a plain function
// (dispatch.Func), run with the server's retries.
//
// Calls go to the mocks given, else to the function of that name
// registered in the program (a child workflow runs as a call of its own),
// else fail with NOT_FOUND. See the package documentation for the
// server's rules flowtest follows.
func Run[I, O any](ctx context.Context, fn *dispatch.Function[I, O], in I, opts ...Option) (O, Report, error) {
	var zero O
	w, err := registered(fn)
	if err != nil {
		return zero, Report{}, err
	}
	return runWorkflow[I, O](ctx, w, in, opts)
}

// RunFunc is [Run] for a flow function that is not registered, such as one
// written in the test itself: it runs under the name "flowtest".
func RunFunc[I, O any](ctx context.Context, fn func(*flow.Ctx, I) flow.Step[O], in I, opts ...Option) (O, Report, error) {
	return runWorkflow[I, O](ctx, unregistered(fn), in, opts)
}

// registered returns the workflow of a function registered with package
// dispatch.
func registered[I, O any](fn *dispatch.Function[I, O]) (workflow, error) {
	if fn == nil {
		return workflow{}, errors.New("flowtest: the function is nil: pass what dispatch.Flow returned")
	}
	f, ok := flowrun.Lookup(fn.Name())
	if !ok {
		return workflow{}, fmt.Errorf("flowtest: no function %q is registered in this program", fn.Name())
	}
	return workflow{name: f.Name, serve: f.Serve}, nil
}

// unregistered returns the workflow of a flow function of the test.
func unregistered[I, O any](fn func(*flow.Ctx, I) flow.Step[O]) workflow {
	start := func(c any, input *anypb.Any) any {
		in, err := flowrun.Input[I]("flowtest", input)
		if err != nil {
			return flow.Fail[O](err)
		}
		return fn(c.(*flow.Ctx), in)
	}
	return workflow{name: "flowtest", serve: func(ctx context.Context, cfg flowrun.Config, req *sdkv1.RunRequest) *sdkv1.RunResponse {
		return flowrun.Serve(ctx, cfg, req, start)
	}}
}

func runWorkflow[I, O any](ctx context.Context, w workflow, in I, opts []Option) (O, Report, error) {
	var zero O
	input, err := serde.Marshal(in)
	if err != nil {
		return zero, Report{}, fmt.Errorf("flowtest: input: %w", err)
	}
	r := newDriver(opts).newRoot(ctx, w, input)
	out := r.loop(r.first())
	return result[O](r, out)
}

// result decodes the outcome of a run for its caller.
func result[O any](r *run, out outcome) (O, Report, error) {
	var o O
	rep := r.rep
	rep.TailCall = out.tail
	if out.tail != nil {
		return o, rep, nil
	}
	if e := out.result.GetError(); e != nil || out.status != sdkv1.Status_STATUS_OK {
		return o, rep, status.FromProto(out.status, e)
	}
	if err := serde.Unmarshal(out.result.GetOutput(), &o); err != nil {
		return o, rep, fmt.Errorf("flowtest: result: %w", err)
	}
	return o, rep, nil
}
