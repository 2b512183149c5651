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

	"github.com/dispatchkit/dispatch"
	"github.com/dispatchkit/dispatch/internal/localmode"
	"github.com/dispatchkit/dispatch/internal/localserver"
	"github.com/dispatchkit/dispatch/server"
)

func init() {
	localmode.Register(func(ctx context.Context, c localmode.Config) (localmode.Server, error) {
		return localserver.Start(ctx, c, nil)
	})
}

// Server returns the server embedded in d, nil when d runs none (it was
// configured with a separate Dispatch server). Tests and tools use it to
// look into the server (its Stats, Result); d owns it and stops it in
// Close.
func Server(d *dispatch.Dispatch) *server.Server {
	s, _ := localmode.EmbeddedIn(d).(localserver.Embedded)
	return s.Server
}
