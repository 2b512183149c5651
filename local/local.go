// Package local is the local mode of the Dispatch SDK: a Dispatch server
// embedded in the program, so that `go run` of a program works end to end
// on a fresh machine with nothing installed or exported. Link it with a
// blank import, as a database/sql driver:
//
//	import _ "github.com/dispatchkit/dispatch/local"
//
// With it, a program that finds neither DISPATCH_API_URL nor
// DISPATCH_API_KEY (nor the options WithAPIURL, WithAPIKey) runs a local
// Dispatch server in-process when it calls dispatch.New: the server keeps
// its calls in a SQLite file in the program's state directory (see
// dispatch.StateDir), so a program that is killed finishes its workflows
// when it runs again; dispatch.WithLocalServer runs one whatever the
// environment says. With DISPATCH_API_URL and DISPATCH_API_KEY set (from
// the banner of `dispatch test`, or for the hosted platform) the program
// uses that server instead, and the embedded one is never started.
//
// Without the import, the SDK does not link the server (its scheduler,
// stores, SQLite and protovalidate): a program that only serves functions
// to a separate server builds faster and smaller. dispatch.New then fails
// when no server is configured, saying to set the variables or to add the
// import.
package local

import (
	"context"

	sdkv1 "buf.build/gen/go/stealthrocket/dispatch-proto/protocolbuffers/go/dispatch/sdk/v1"
	"connectrpc.com/connect"

	"github.com/dispatchkit/dispatch"
	"github.com/dispatchkit/dispatch/internal/callresult"
	"github.com/dispatchkit/dispatch/internal/localapi"
	"github.com/dispatchkit/dispatch/internal/localmode"
	"github.com/dispatchkit/dispatch/server"
)

func init() { localmode.Register(start) }

// embedded is the server as local mode's bridge sees it: its Result
// answers the bridge's Outcome, and its Cancel the bridge's CancelResult,
// types of the same fields.
type embedded struct{ *server.Server }

func (e embedded) Result(ctx context.Context, id string) (*callresult.Outcome, error) {
	o, err := e.Server.Result(ctx, id)
	return (*callresult.Outcome)(o), err
}

func (e embedded) Cancel(ctx context.Context, id, reason string) (*localapi.CancelResult, error) {
	r, err := e.Server.Cancel(ctx, id, reason)
	if err != nil {
		return nil, err
	}
	return (*localapi.CancelResult)(&r), nil
}

func (e embedded) Dispatch(ctx context.Context, req *connect.Request[sdkv1.DispatchRequest]) (*connect.Response[sdkv1.DispatchResponse], error) {
	return e.Server.DispatchInProcess(ctx, req)
}

// start makes and starts the embedded server: the program's endpoint is
// its default, and loopback endpoints are allowed besides it.
func start(ctx context.Context, c localmode.Config) (localmode.Server, error) {
	srv, err := server.New(server.Config{
		Endpoint:       c.Endpoint,
		AllowEndpoints: []string{"loopback"},
		StateDir:       c.StateDir,
		Memory:         c.Memory,
		FullSync:       c.FullSync,
		Logger:         c.Logger,
		EndpointRun:    c.Run,
	})
	if err != nil {
		return nil, err
	}
	if err := srv.Start(ctx); err != nil {
		srv.Close()
		return nil, err
	}
	return embedded{srv}, nil
}

// Server returns the server embedded in d, nil when d runs none (it was
// configured with a separate Dispatch server). Tests and tools use it to
// look into the server (its Stats, Result); d owns it and stops it in
// Close.
func Server(d *dispatch.Dispatch) *server.Server {
	s, _ := localmode.EmbeddedIn(d).(embedded)
	return s.Server
}
