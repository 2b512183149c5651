package flow

import (
	"context"
	"time"

	sdkv1 "buf.build/gen/go/stealthrocket/dispatch-proto/protocolbuffers/go/dispatch/sdk/v1"
	"github.com/rs/zerolog"

	"github.com/dispatchkit/dispatch/internal/flowrun"
)

// Info describes the function call a flow runs in, as Dispatch reported it in
// the RunRequest.
//
// DispatchID is not an idempotency key: a call runs at least once, and a
// call made by a workflow step that a crash lost before it was stored is
// made again under a new id (the server starts a step's calls while the
// step is stored). Key side effects with a value of the input instead.
type Info struct {
	Function   string    // registered name of the flow
	DispatchID string    // this call's dispatch id
	ParentID   string    // the parent call's dispatch id, empty for a root call
	RootID     string    // the root call's dispatch id
	Created    time.Time // when the call was created (kept across tail calls)
	Expires    time.Time // when Dispatch gives up on the call; zero if unknown
}

// Ctx is the context a flow and its continuations run with. It is a
// [context.Context] (cancelled when the Run request ends), so it can be passed
// to anything that takes one, and it describes the call being run.
//
// A Ctx lives for one run of the function: a continuation that resumes later
// gets a new one, possibly on another instance. Do not keep it in an
// environment.
type Ctx struct {
	context.Context
	info Info
	cfg  flowrun.Config
}

// newCtx returns the context for one run of a flow.
func newCtx(ctx context.Context, info Info, cfg flowrun.Config) *Ctx {
	if ctx == nil {
		ctx = context.Background()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Ctx{Context: ctx, info: info, cfg: cfg}
}

// infoOf describes the call of a RunRequest.
func infoOf(req *sdkv1.RunRequest) Info {
	info := Info{
		Function:   req.GetFunction(),
		DispatchID: req.GetDispatchId(),
		ParentID:   req.GetParentDispatchId(),
		RootID:     req.GetRootDispatchId(),
	}
	if t := req.GetCreationTime(); t != nil {
		info.Created = t.AsTime()
	}
	if t := req.GetExpirationTime(); t != nil {
		info.Expires = t.AsTime()
	}
	return info
}

// Info describes the call this flow runs in.
func (c *Ctx) Info() Info { return c.info }

// Logger returns the engine's logger with the call's function and dispatch id
// attached.
func (c *Ctx) Logger() zerolog.Logger {
	return c.cfg.Logger.With().Str("function", c.info.Function).Str("dispatch_id", c.info.DispatchID).Logger()
}

// Now returns the current time from the configured clock.
func (c *Ctx) Now() time.Time { return c.cfg.Now() }
