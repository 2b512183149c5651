package dispatch

import (
	"context"
	"fmt"

	sdkv1 "buf.build/gen/go/stealthrocket/dispatch-proto/protocolbuffers/go/dispatch/sdk/v1"
	"github.com/dispatchkit/dispatch/flow"
	"github.com/dispatchkit/dispatch/internal/flowrun"
	"github.com/dispatchkit/dispatch/internal/registry"
	"github.com/dispatchkit/dispatch/internal/status"
	"github.com/dispatchkit/dispatch/serde"
	"google.golang.org/protobuf/types/known/anypb"
)

// Function is a function registered with Dispatch under a stable name: a
// plain function ([Func]) or a workflow ([Flow]). I is its input type, O its
// result type. Use Dispatch to call it from anywhere, and Call (with the
// combinators of package flow) to call it from a workflow.
type Function[I, O any] struct {
	name string
	flow bool // registered with Flow
	run  func(ctx context.Context, rt *runtime, req *sdkv1.RunRequest) *sdkv1.RunResponse
}

// runtime is what a Dispatch instance lends to a function run.
type runtime struct {
	flowConfig flowrun.Config
}

// entry is a registered function with its types erased.
type entry interface {
	Name() string
	serve(ctx context.Context, rt *runtime, req *sdkv1.RunRequest) *sdkv1.RunResponse
	isFlow() bool
}

// functions are the registered functions, by name.
var functions registry.Registry[entry]

func register(e entry) error {
	name := e.Name()
	if len(name) > registry.MaxNameBytes {
		return fmt.Errorf("dispatch: function name %q is %d bytes, at most %d: choose a shorter name", registry.Short(name), len(name), registry.MaxNameBytes)
	}
	if !registry.ValidName(name) {
		return fmt.Errorf("dispatch: invalid function name %q: names match %s (letters, digits, '_', '.', '<', '>'; not starting with a digit)", name, registry.Pattern)
	}
	if !functions.Add(name, e) {
		return fmt.Errorf("dispatch: function %q is registered twice: each name must be unique in a program", name)
	}
	return nil
}

func lookupFunction(name string) (entry, bool) { return functions.Get(name) }

// Functions returns the names of the registered functions, sorted.
func Functions() []string { return functions.Names() }

// Func registers fn as a plain function called name. Dispatch runs it once
// per attempt and retries it on temporary errors (see [Temporary] and the
// error classification in the package documentation); a panic fails the
// call with PERMANENT_ERROR and the process lives on.
//
// The name, not the Go identifier, is what Dispatch records and what other
// services call: keep it stable across builds, so that calls made by one
// build still run after a deployment even if the Go code was renamed. A
// name matches ^[a-zA-Z_][a-zA-Z0-9_<>.]*$ and has at most 256 bytes. Func
// panics if the name is invalid or already taken, so declare functions as
// package-level variables; [FuncSafely] returns the error instead.
//
//	var Publish = dispatch.Func("publish", func(ctx context.Context, msg Message) (Receipt, error) { ... })
func Func[I, O any](name string, fn func(ctx context.Context, in I) (O, error)) *Function[I, O] {
	f, err := FuncSafely(name, fn)
	if err != nil {
		panic(err)
	}
	return f
}

// FuncSafely is [Func] returning an error instead of panicking.
func FuncSafely[I, O any](name string, fn func(ctx context.Context, in I) (O, error)) (*Function[I, O], error) {
	f := &Function[I, O]{name: name}
	f.run = func(ctx context.Context, _ *runtime, req *sdkv1.RunRequest) *sdkv1.RunResponse {
		var in I
		if err := serde.Unmarshal(req.GetInput(), &in); err != nil {
			return status.ExitError(status.WithStatus(fmt.Errorf("dispatch: input of %q: %w", name, err), status.InvalidArgument))
		}
		out, err := callPlain(ctx, fn, in)
		if err != nil {
			return status.ExitError(err)
		}
		a, err := serde.Marshal(out)
		if err != nil {
			return status.ExitError(status.WithStatus(fmt.Errorf("dispatch: result of %q: %w", name, err), status.PermanentError))
		}
		return &sdkv1.RunResponse{Status: sdkv1.Status_STATUS_OK, Directive: &sdkv1.RunResponse_Exit{Exit: &sdkv1.Exit{Result: &sdkv1.CallResult{Output: a}}}}
	}
	if err := register(f); err != nil {
		return nil, err
	}
	return f, nil
}

func callPlain[I, O any](ctx context.Context, fn func(context.Context, I) (O, error), in I) (out O, err error) {
	err = status.CatchPanic(func() error {
		var err error
		out, err = fn(ctx, in)
		return err
	})
	return out, err
}

// Flow registers fn as a workflow called name. fn returns a [flow.Step]:
// await calls with [flow.Await], [flow.Gather], [flow.Any] or [flow.Race],
// sleep with [flow.Sleep], and go on in continuations registered by name
// ([flow.Then], [flow.ThenWith], ...). Every await is a durability step: the
// workflow suspends, Dispatch keeps its state, and the continuation runs
// when the results are in, on any instance of the service.
//
// See [Func] about names and panics; [FlowSafely] returns the error instead
// of panicking. Options configure the workflow (see [FailOnIncompatible]).
// Package flowtest runs the workflow in tests as Dispatch does.
//
//	var Pipeline = dispatch.Flow("pipeline", func(ctx *flow.Ctx, msg string) flow.Step[string] {
//		return flow.Await(Transform1.Call(msg), transformed)
//	})
func Flow[I, O any](name string, fn func(ctx *flow.Ctx, in I) flow.Step[O], opts ...FlowOption) *Function[I, O] {
	f, err := FlowSafely(name, fn, opts...)
	if err != nil {
		panic(err)
	}
	return f
}

// FlowSafely is [Flow] returning an error instead of panicking.
func FlowSafely[I, O any](name string, fn func(ctx *flow.Ctx, in I) flow.Step[O], opts ...FlowOption) (*Function[I, O], error) {
	var fc flowConfig
	for _, o := range opts {
		o.applyFlow(&fc)
	}
	f := &Function[I, O]{name: name, flow: true}
	// The interpreter of package flow runs the flow; start is its first
	// step, typed here where I and O are known (see internal/flowrun).
	start := func(c any, input *anypb.Any) any {
		in, err := flowrun.Input[I](name, input)
		if err != nil {
			return flow.Fail[O](err)
		}
		return fn(c.(*flow.Ctx), in)
	}
	f.run = func(ctx context.Context, rt *runtime, req *sdkv1.RunRequest) *sdkv1.RunResponse {
		cfg := rt.flowConfig
		cfg.FailOnIncompatible = fc.failOnIncompatible
		return flowrun.Serve(ctx, cfg, req, start)
	}
	if err := register(f); err != nil {
		return nil, err
	}
	return f, nil
}

// Name returns the name the function is registered under.
func (f *Function[I, O]) Name() string { return f.name }

func (f *Function[I, O]) serve(ctx context.Context, rt *runtime, req *sdkv1.RunRequest) *sdkv1.RunResponse {
	return f.run(ctx, rt, req)
}

func (f *Function[I, O]) isFlow() bool { return f.flow }

// Call returns a call of the function with in, to await in a workflow:
//
//	flow.Await(Charge.Call(order), charged.With(order))
func (f *Function[I, O]) Call(in I) flow.Call[O] { return flow.NewCall[O](f.name, in) }

// Dispatch asks Dispatch to run the function with in and returns the call's
// dispatch id. It returns as soon as the call is durably recorded; the
// function runs later, on any instance of the service, and is retried on
// temporary errors. It uses the default [Dispatch] instance (see [Default]).
func (f *Function[I, O]) Dispatch(ctx context.Context, in I) (string, error) {
	d, err := Default()
	if err != nil {
		return "", err
	}
	ids, err := d.Dispatch(ctx, f.Call(in))
	if err != nil {
		return "", err
	}
	return ids[0], nil
}

// DispatchAll is [Function.Dispatch] for many inputs at once: it
// dispatches a call of the function per input, atomically (all are
// recorded or none is), and returns their dispatch ids in the order of
// the inputs; [Function.WaitAll] waits for them. No input dispatches
// nothing.
//
//	ids, err := Resize.DispatchAll(ctx, images...)
func (f *Function[I, O]) DispatchAll(ctx context.Context, inputs ...I) ([]string, error) {
	if len(inputs) == 0 {
		return nil, nil
	}
	d, err := Default()
	if err != nil {
		return nil, err
	}
	return d.Dispatch(ctx, f.callers(inputs)...)
}

// callers returns a call of the function per input, as Callers.
func (f *Function[I, O]) callers(inputs []I) []Caller {
	calls := make([]Caller, len(inputs))
	for i, in := range inputs {
		calls[i] = f.Call(in)
	}
	return calls
}
