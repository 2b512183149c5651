// Package localserver starts the Dispatch server of local mode (package
// local registers [Start]) and adapts it to what local mode's bridge
// (internal/localmode) calls. It is apart from package local so that the
// SDK's own tests start the same server, with settings of their own,
// without importing package local (which imports the SDK).
package localserver

import (
	"context"

	sdkv1 "buf.build/gen/go/stealthrocket/dispatch-proto/protocolbuffers/go/dispatch/sdk/v1"
	"connectrpc.com/connect"

	"github.com/dispatchkit/dispatch/internal/callresult"
	"github.com/dispatchkit/dispatch/internal/localapi"
	"github.com/dispatchkit/dispatch/internal/localmode"
	"github.com/dispatchkit/dispatch/server"
)

// Embedded is the server as local mode's bridge sees it: its Result
// answers the bridge's Outcome, and its Cancel the bridge's CancelResult,
// types of the same fields; its Dispatch takes requests in process.
type Embedded struct{ *server.Server }

// Result implements localmode.Server.
func (e Embedded) Result(ctx context.Context, id string) (*callresult.Outcome, error) {
	o, err := e.Server.Result(ctx, id)
	return (*callresult.Outcome)(o), err
}

// Cancel implements localmode.Server.
func (e Embedded) Cancel(ctx context.Context, id, reason string) (*localapi.CancelResult, error) {
	r, err := e.Server.Cancel(ctx, id, reason)
	if err != nil {
		return nil, err
	}
	return (*localapi.CancelResult)(&r), nil
}

// Dispatch implements localmode.Server.
func (e Embedded) Dispatch(ctx context.Context, req *connect.Request[sdkv1.DispatchRequest]) (*connect.Response[sdkv1.DispatchResponse], error) {
	return e.Server.DispatchInProcess(ctx, req)
}

// Start makes and starts the embedded server of c: the program's endpoint
// is its default, and loopback endpoints are allowed besides it. tune, if
// not nil, changes the server's configuration first (tests shorten its
// timeouts).
func Start(ctx context.Context, c localmode.Config, tune func(*server.Config)) (localmode.Server, error) {
	cfg := server.Config{
		Endpoint:       c.Endpoint,
		AllowEndpoints: []string{"loopback"},
		StateDir:       c.StateDir,
		Memory:         c.Memory,
		FullSync:       c.FullSync,
		Postgres:       c.Postgres,
		Logger:         c.Logger,
		EndpointRun:    c.Run,
	}
	if tune != nil {
		tune(&cfg)
	}
	srv, err := server.New(cfg)
	if err != nil {
		return nil, err
	}
	if err := srv.Start(ctx); err != nil {
		srv.Close()
		return nil, err
	}
	return Embedded{srv}, nil
}
