// Package localmode is the bridge between the SDK (package dispatch) and
// its local mode (package local), which embeds a Dispatch server in the
// program. The SDK must not link the server (its scheduler, stores,
// SQLite, protovalidate) into programs that use a separate one, so the
// server is linked only by a blank import of package local, whose init
// registers a [Starter] here, as a database/sql driver registers itself:
//
//	import _ "github.com/dispatchkit/dispatch/local"
//
// Package dispatch asks for the registered starter when local mode is
// wanted, and works with the embedded server through the [Server]
// interface, which package local implements over *server.Server. Nothing
// here names a type of package server.
package localmode

import (
	"context"
	"crypto/ed25519"
	"sync"

	sdkv1 "buf.build/gen/go/stealthrocket/dispatch-proto/protocolbuffers/go/dispatch/sdk/v1"
	"connectrpc.com/connect"
	"github.com/rs/zerolog"

	"github.com/dispatchkit/dispatch/internal/callresult"
	"github.com/dispatchkit/dispatch/internal/localapi"
)

// Config is what the SDK asks of the embedded server.
type Config struct {
	// Endpoint is the URL of the program's endpoint, where calls without
	// an endpoint go; loopback endpoints are allowed besides it.
	Endpoint string
	// StateDir is where the server keeps its calls and signing key; ""
	// with Memory.
	StateDir string
	// Memory keeps the calls in memory only.
	Memory bool
	// FullSync syncs the disk at every commit of the file store
	// (server.Config.FullSync); false with Memory and Postgres.
	FullSync bool
	// Postgres is the URL of the PostgreSQL database that keeps the
	// calls (server.Config.Postgres), in place of StateDir: the embedded
	// server is a replica of that database's cluster.
	Postgres string
	// Logger receives the server's logs.
	Logger zerolog.Logger
	// Run, if set, serves Endpoint in process: the server calls it with
	// each RunRequest to Endpoint instead of a signed HTTP request. It is
	// the endpoint's Run after decoding (a *connect.Error is answered as
	// its HTTP status would be). Nil keeps signed HTTP.
	Run func(ctx context.Context, req *sdkv1.RunRequest) (*sdkv1.RunResponse, error)
}

// Server is the embedded server, started, as the SDK uses it.
type Server interface {
	// URL is the server's DispatchService URL (DISPATCH_API_URL).
	URL() string
	// APIKey is the key it requires (DISPATCH_API_KEY).
	APIKey() string
	// PublicKey verifies the requests it signs.
	PublicKey() ed25519.PublicKey
	// Result waits until the call id is final and returns its outcome.
	Result(ctx context.Context, id string) (*callresult.Outcome, error)
	// Cancel cancels the call id and its tree of children; reason says
	// who cancels.
	Cancel(ctx context.Context, id, reason string) (*localapi.CancelResult, error)
	// Dispatch is DispatchService's Dispatch called in process (with
	// the API key in the request's Authorization header), as the SDK
	// does when the server calls its functions in process (Config.Run):
	// the same checks and errors as over HTTP.
	Dispatch(ctx context.Context, req *connect.Request[sdkv1.DispatchRequest]) (*connect.Response[sdkv1.DispatchResponse], error)
	// Close stops the server; calls in flight stay in its store.
	Close() error
}

// A Starter makes and starts an embedded server.
type Starter func(ctx context.Context, cfg Config) (Server, error)

var registered struct {
	sync.Mutex
	start Starter
}

// Register makes start the starter of local mode. Package local calls it
// from its init; a second registration replaces the first.
func Register(start Starter) {
	registered.Lock()
	registered.start = start
	registered.Unlock()
}

// Registered returns the registered starter, nil when package local is
// not linked into the program.
func Registered() Starter {
	registered.Lock()
	defer registered.Unlock()
	return registered.start
}

// EmbeddedIn returns the embedded server of a *dispatch.Dispatch, nil when
// it runs none. Package dispatch sets it at init (d is any because this
// package cannot name the type); package local's Server reads it.
var EmbeddedIn func(d any) Server

// Import is the import that links local mode, for error messages.
const Import = `import _ "github.com/dispatchkit/dispatch/local"`
