// Package flowrun is the bridge to the interpreter of package flow for its
// two drivers: package dispatch, which serves the Run requests of the
// registered flows, and flow/flowtest, which plays Dispatch's part in
// tests. Package flow's public API is the DSL users write (Step, Await,
// Gather, Then, ...); the interpreter stays in package flow, beside the
// DSL whose unexported fields it reads, and flow registers its entry point
// here at init ([Serve]).
//
// This package cannot import flow (flow imports it), so a flow's context
// and its first step cross it as any: a [Start] receives the flow's
// *flow.Ctx and returns the flow.Step of the registered function, and the
// interpreter takes the Step back. Those are the only two untyped values,
// and each driver handles them in one place.
package flowrun

import (
	"context"
	"fmt"
	"io"
	"time"

	sdkv1 "buf.build/gen/go/stealthrocket/dispatch-proto/protocolbuffers/go/dispatch/sdk/v1"
	"github.com/rs/zerolog"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/dispatchkit/dispatch/internal/status"
	"github.com/dispatchkit/dispatch/serde"
)

// Config holds what the interpreter needs beyond the request itself. The
// zero value is usable: no trace output, the system clock, a disabled
// logger.
type Config struct {
	// Trace, when not nil, receives a human-readable dump of every frame
	// at each suspension, once the state is saved or failed to be (see
	// package trace and DISPATCH_TRACE).
	Trace io.Writer
	// Now returns the current time; tests inject a fixed clock.
	Now func() time.Time
	// Logger receives the interpreter's events (flow.Ctx.Logger), such as
	// the warning that a saved state is incompatible.
	Logger zerolog.Logger
	// FailOnIncompatible makes a state this build cannot resume fail the
	// call with PERMANENT_ERROR instead of INCOMPATIBLE_STATE, which
	// Dispatch answers by restarting the call from its input
	// (dispatch.FailOnIncompatible).
	FailOnIncompatible bool
}

// Start is the first step of a registered flow: called with the flow's
// *flow.Ctx and the request's input, it returns the flow.Step of the
// function (see [Input] to decode the input), or a failed Step.
type Start func(c any, input *anypb.Any) any

// Serve runs one RunRequest of a flow and returns the response: a request
// with an input starts the flow with start, one with a poll result resumes
// it from its state (start is not called, and may be nil). It never
// panics: a panic in the flow fails the call with PERMANENT_ERROR. Package
// flow sets it at init.
var Serve func(ctx context.Context, cfg Config, req *sdkv1.RunRequest, start Start) *sdkv1.RunResponse

// Function is a function registered with package dispatch, as its drivers
// see it: how to serve one RunRequest of it.
type Function struct {
	// Name is the name it is registered under.
	Name string
	// Flow says it is a workflow (dispatch.Flow): it may answer with a
	// Poll, and resumes from its state.
	Flow bool
	// Serve runs one RunRequest of the function, as the endpoint does, with
	// cfg for a workflow (a plain function ignores it). It never panics.
	Serve func(ctx context.Context, cfg Config, req *sdkv1.RunRequest) *sdkv1.RunResponse
}

// Lookup returns the function registered with package dispatch under name.
// Package dispatch sets it at init; flowtest uses it to run the workflows
// it is given and the functions they call. It is nil in a program that
// does not link package dispatch.
var Lookup func(name string) (Function, bool)

// Frames returns the continuation names of the frames of a suspended
// flow's state, from the top of the stack down, without resuming it (for
// flowtest's reports). Package flow sets it at init.
var Frames func(state []byte) ([]string, error)

// Input decodes the input of a first run of the flow named function into
// an I. Its error is the one the call fails with: INVALID_ARGUMENT, naming
// the function.
func Input[I any](function string, input *anypb.Any) (I, error) {
	var in I
	if err := serde.Unmarshal(input, &in); err != nil {
		return in, status.WithStatus(fmt.Errorf("flow: input of %q: %w", function, err), status.InvalidArgument)
	}
	return in, nil
}
