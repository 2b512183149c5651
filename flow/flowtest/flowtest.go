// Package flowtest runs workflows in a test, without Dispatch: it plays
// Dispatch's part in-process, making the calls a flow awaits with mocked
// functions, delivering their results in an order the test chooses, and
// moving a fake clock through sleeps and timeouts. Every suspension goes
// through the real state encoding, so a flow that passes here also
// serializes.
//
//	out, err := flowtest.Run(ctx, Pipeline, "hello",
//		flowtest.Mock("transform1", strings.ToUpper),
//		flowtest.Mock("transform2", func(s string) (string, error) { return s + "!", nil }),
//	)
package flowtest

import (
	"context"
	"errors"
	"fmt"
	"time"

	sdkv1 "buf.build/gen/go/stealthrocket/dispatch-proto/protocolbuffers/go/dispatch/sdk/v1"
	"github.com/dispatchkit/dispatch/flow"
	"github.com/dispatchkit/dispatch/internal/flowrun"
	"github.com/dispatchkit/dispatch/internal/status"
	"github.com/dispatchkit/dispatch/serde"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// An Option configures a run.
type Option interface{ apply(*driver) }

type optionFunc func(*driver)

func (f optionFunc) apply(d *driver) { f(d) }

// Mock serves calls to the function called name with fn. fn's error, if
// any, reaches the flow with its status (see the dispatch package's
// markers).
func Mock[I, O any](name string, fn func(I) (O, error)) Option {
	return optionFunc(func(d *driver) {
		d.funcs[name] = func(in *anypb.Any) (*anypb.Any, error) {
			var i I
			if err := serde.Unmarshal(in, &i); err != nil {
				return nil, status.WithStatus(err, status.InvalidArgument)
			}
			o, err := fn(i)
			if err != nil {
				return nil, err
			}
			return serde.Marshal(o)
		}
	})
}

// Hang makes calls to the function called name never complete, as a
// function that hangs until its expiration would; a flow waiting on them
// moves on only through a timeout or another call.
func Hang(name string) Option {
	return optionFunc(func(d *driver) { d.hang[name] = true })
}

// Order says in which order and batches results reach the flow.
type Order int

const (
	// AllAtOnce delivers every ready result in one resume (up to the
	// poll's max_results), in call order.
	AllAtOnce Order = iota
	// OneAtATime delivers one result per resume, in call order.
	OneAtATime
	// Reversed delivers one result per resume, last call first.
	Reversed
)

// Deliver sets the order of delivery (default AllAtOnce).
func Deliver(o Order) Option { return optionFunc(func(d *driver) { d.order = o }) }

// Duplicates delivers every result twice, as an at-least-once scheduler
// may.
func Duplicates() Option { return optionFunc(func(d *driver) { d.dup = true }) }

// PollError makes the n-th poll (from 1) fail as a whole, as when Dispatch
// cannot make its calls.
func PollError(n int, err error) Option {
	return optionFunc(func(d *driver) { d.pollErrAt, d.pollErr = n, err })
}

// Clock starts the fake clock at t (default 2026-01-01T00:00:00Z).
func Clock(t time.Time) Option { return optionFunc(func(d *driver) { d.now = t }) }

// Trace writes the frame dumps of the run to w (see package trace).
func Trace(w interface{ Write([]byte) (int, error) }) Option {
	return optionFunc(func(d *driver) { d.trace = w })
}

// Report describes a run.
type Report struct {
	Resumes    int           // resumes after the first run
	Calls      int           // calls the flow made
	MaxState   int           // largest state in bytes
	States     []int         // size of the state at each suspension
	Slept      time.Duration // fake time that passed
	TailCall   *sdkv1.Call   // the tail call the flow ended with, if any
	MaxPending int           // most calls in flight at once
}

type driver struct {
	funcs     map[string]func(*anypb.Any) (*anypb.Any, error)
	hang      map[string]bool
	order     Order
	dup       bool
	pollErrAt int
	pollErr   error
	now       time.Time
	trace     interface{ Write([]byte) (int, error) }
}

// Run runs the flow fn with input in, to completion, and returns its result
// decoded into O, or its error: a *dispatcherr.Error keeping the status, as
// the flow's caller would receive it.
func Run[I, O any](ctx context.Context, fn func(*flow.Ctx, I) flow.Step[O], in I, opts ...Option) (O, Report, error) {
	var out O
	var rep Report
	d := &driver{funcs: map[string]func(*anypb.Any) (*anypb.Any, error){}, hang: map[string]bool{}, now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	for _, o := range opts {
		o.apply(d)
	}
	input, err := serde.Marshal(in)
	if err != nil {
		return out, rep, fmt.Errorf("flowtest: input: %w", err)
	}
	cfg := flowrun.Config{Now: func() time.Time { return d.now }}
	if d.trace != nil {
		cfg.Trace = d.trace
	}
	// Each run gets a RunRequest as Dispatch would send it, to the
	// interpreter of package flow (see internal/flowrun).
	created := timestamppb.New(d.now)
	request := func() *sdkv1.RunRequest {
		return &sdkv1.RunRequest{Function: "flowtest", DispatchId: "test-1", RootDispatchId: "test-1", CreationTime: created}
	}
	start := func(c any, input *anypb.Any) any {
		in, err := flowrun.Input[I]("flowtest", input)
		if err != nil {
			return flow.Fail[O](err)
		}
		return fn(c.(*flow.Ctx), in)
	}
	req := request()
	req.Directive = &sdkv1.RunRequest_Input{Input: input}
	resp := flowrun.Serve(ctx, cfg, req, start)
	var inbox []*sdkv1.CallResult
	inflight := 0
	for polls := 1; ; polls++ {
		switch dir := resp.GetDirective().(type) {
		case *sdkv1.RunResponse_Exit:
			rep.TailCall = dir.Exit.GetTailCall()
			r := dir.Exit.GetResult()
			if r.GetError() != nil || resp.GetStatus() != sdkv1.Status_STATUS_OK {
				return out, rep, status.FromProto(resp.GetStatus(), r.GetError())
			}
			if rep.TailCall != nil {
				return out, rep, nil
			}
			if err := serde.Unmarshal(r.GetOutput(), &out); err != nil {
				return out, rep, fmt.Errorf("flowtest: result: %w", err)
			}
			return out, rep, nil
		case *sdkv1.RunResponse_Poll:
			p := dir.Poll
			size := len(p.GetTypedCoroutineState().GetValue()) + len(p.GetCoroutineState())
			rep.States = append(rep.States, size)
			rep.MaxState = max(rep.MaxState, size)
			pr := &sdkv1.PollResult{}
			if p.GetTypedCoroutineState() != nil {
				pr.State = &sdkv1.PollResult_TypedCoroutineState{TypedCoroutineState: p.GetTypedCoroutineState()}
			} else {
				pr.State = &sdkv1.PollResult_CoroutineState{CoroutineState: p.GetCoroutineState()}
			}
			if polls == d.pollErrAt {
				_, pe := status.ToProto(d.pollErr)
				pr.Error = pe
			} else {
				for _, c := range p.GetCalls() {
					rep.Calls++
					if !d.hang[c.GetFunction()] {
						inbox = append(inbox, d.call(c))
					}
				}
				inflight += len(p.GetCalls())
				rep.MaxPending = max(rep.MaxPending, inflight)
			}
			batch := d.pick(&inbox, int(p.GetMaxResults()))
			inflight -= len(batch)
			if len(batch) < int(p.GetMinResults()) || len(p.GetCalls()) == 0 && len(batch) == 0 {
				// Nothing more will arrive in time: the poll's max_wait passes.
				wait := p.GetMaxWait().AsDuration()
				d.now = d.now.Add(wait)
				rep.Slept += wait
			}
			for _, b := range batch {
				pr.Results = append(pr.Results, b)
				if d.dup {
					pr.Results = append(pr.Results, b)
				}
			}
			rep.Resumes++
			if rep.Resumes > 100000 {
				return out, rep, errors.New("flowtest: the flow resumed 100000 times without finishing")
			}
			req := request()
			req.Directive = &sdkv1.RunRequest_PollResult{PollResult: pr}
			resp = flowrun.Serve(ctx, cfg, req, start)
		default:
			return out, rep, fmt.Errorf("flowtest: the flow answered neither exit nor poll (status %s)", resp.GetStatus())
		}
	}
}

// call makes one call with its mock.
func (d *driver) call(c *sdkv1.Call) *sdkv1.CallResult {
	res := &sdkv1.CallResult{CorrelationId: c.GetCorrelationId(), DispatchId: fmt.Sprintf("child-%d", c.GetCorrelationId())}
	fn, ok := d.funcs[c.GetFunction()]
	if !ok {
		_, res.Error = status.ToProto(status.WithStatus(fmt.Errorf("flowtest: no mock for function %q: add flowtest.Mock(%q, ...)", c.GetFunction(), c.GetFunction()), status.NotFound))
		return res
	}
	out, err := fn(c.GetInput())
	if err != nil {
		_, res.Error = status.ToProto(err)
		return res
	}
	res.Output = out
	return res
}

// pick takes the results of the next resume out of the inbox.
func (d *driver) pick(inbox *[]*sdkv1.CallResult, maxResults int) []*sdkv1.CallResult {
	q := *inbox
	n := len(q)
	if d.order != AllAtOnce {
		n = min(n, 1)
	}
	n = min(n, max(maxResults, 1))
	var batch []*sdkv1.CallResult
	if d.order == Reversed {
		batch = append(batch, q[len(q)-n:]...)
		*inbox = q[:len(q)-n]
	} else {
		batch = append(batch, q[:n]...)
		*inbox = q[n:]
	}
	return batch
}
