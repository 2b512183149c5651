package dispatch

import (
	"context"

	sdkv1 "buf.build/gen/go/stealthrocket/dispatch-proto/protocolbuffers/go/dispatch/sdk/v1"
	"github.com/dispatchkit/dispatch/internal/flowrun"
)

// A FlowOption configures a workflow registered with [Flow].
//
// FlowOption is sealed: only this package implements it, so that options
// can grow without breaking anyone.
type FlowOption interface{ applyFlow(*flowConfig) }

type flowConfig struct {
	failOnIncompatible bool
}

type flowOptionFunc func(*flowConfig)

func (f flowOptionFunc) applyFlow(c *flowConfig) { f(c) }

// FailOnIncompatible makes the workflow fail when it is resumed with a
// state this build cannot read (a continuation renamed or removed, an
// environment that no longer decodes, a state from a newer build), instead
// of restarting from its input.
//
// By default such a resume answers INCOMPATIBLE_STATE, and Dispatch
// restarts the call from its original input (at most 3 times on the local
// server, see server.Config.MaxRestarts): the workflow runs again from the
// start, so every call it made and every side effect of its continuations
// before the restart happens again. That is right for a workflow whose
// steps are idempotent, and wrong for one that, say, charges a card.
// With FailOnIncompatible the call fails with PERMANENT_ERROR, whose
// message names the frame and the reason; it is not restarted, its caller
// receives the error, and nothing runs twice. Either way the program that
// hit the state logs a warning with the frame and the reason.
//
//	var Order = dispatch.Flow("order", placeOrder, dispatch.FailOnIncompatible())
//
// PERMANENT_ERROR, rather than INCOMPATIBLE_STATE with restarts disabled
// for the call, because the protocol has no way to ask Dispatch not to
// restart one call: INCOMPATIBLE_STATE means "restart" to every server.
func FailOnIncompatible() FlowOption {
	return flowOptionFunc(func(c *flowConfig) { c.failOnIncompatible = true })
}

// The drivers of package flow's interpreter (flowtest) run registered
// functions through internal/flowrun, as the endpoint does.
func init() {
	flowrun.Lookup = func(name string) (flowrun.Function, bool) {
		e, ok := lookupFunction(name)
		if !ok {
			return flowrun.Function{}, false
		}
		return flowrun.Function{
			Name: name,
			Flow: e.isFlow(),
			Serve: func(ctx context.Context, cfg flowrun.Config, req *sdkv1.RunRequest) *sdkv1.RunResponse {
				return e.serve(ctx, &runtime{flowConfig: cfg}, req)
			},
		}, true
	}
}
