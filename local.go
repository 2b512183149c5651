package dispatch

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"buf.build/gen/go/stealthrocket/dispatch-proto/connectrpc/go/dispatch/sdk/v1/sdkv1connect"
	sdkv1 "buf.build/gen/go/stealthrocket/dispatch-proto/protocolbuffers/go/dispatch/sdk/v1"
	"connectrpc.com/connect"

	"github.com/dispatchkit/dispatch/internal/localmode"
)

// Local mode: a program that finds neither DISPATCH_API_URL nor
// DISPATCH_API_KEY (nor the options WithAPIURL, WithAPIKey) runs a local
// Dispatch server in-process, so that `go run` of a program works end to
// end on a fresh machine with nothing installed or exported. The server
// keeps its calls in a SQLite file in the program's state directory (see
// [StateDir]), so a program that is killed finishes its workflows when it
// runs again.
//
// The embedded server sends calls only to the program's endpoint and to
// loopback endpoints (server.Config.AllowEndpoints "loopback"), and local
// mode has no option for more: a program whose calls name endpoints
// elsewhere runs against `dispatch test --allow-endpoint ...` instead.
//
// The server is linked only into programs that import package local (a
// blank import, as a database/sql driver): the SDK itself does not depend
// on it. Without the import, New fails when no server is configured, and
// says what to do. Package local registers its starter with
// internal/localmode at init; this file asks for it.
//
// With DISPATCH_API_URL and DISPATCH_API_KEY set (from the banner of
// `dispatch test`, or for the hosted platform) the program uses that
// server instead.

// EnvStateDir overrides the state directory of the embedded server.
const EnvStateDir = "DISPATCH_STATE_DIR"

// EnvLocalTransport chooses how the embedded server reaches the program's
// endpoint: "http" for signed HTTP requests over loopback, as to any
// endpoint; anything else (the default) calls the registered functions in
// process.
const EnvLocalTransport = "DISPATCH_LOCAL_TRANSPORT"

// StateDir returns the directory where the embedded server of the program
// named program keeps its state: $DISPATCH_STATE_DIR if set, else
// $XDG_STATE_HOME/dispatch/<program>, else ~/.local/state/dispatch/<program>.
func StateDir(program string) (string, error) {
	return stateDir(os.LookupEnv, program)
}

func stateDir(env func(string) (string, bool), program string) (string, error) {
	if d, ok := env(EnvStateDir); ok && d != "" {
		return d, nil
	}
	base, _ := env("XDG_STATE_HOME")
	if base == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("dispatch: no state directory for the local server: set %s: %w", EnvStateDir, err)
		}
		base = filepath.Join(home, ".local", "state")
	}
	return filepath.Join(base, "dispatch", program), nil
}

// programName names the program for its state directory: the base name of
// the executable (for `go run ./examples/pipeline`, "pipeline").
func programName() string {
	name := filepath.Base(os.Args[0])
	name = strings.TrimSuffix(name, ".exe")
	if name == "" || name == "." || name == string(filepath.Separator) {
		return "default"
	}
	return name
}

// wantsLocal reports whether the configuration names no Dispatch server.
func (c *config) wantsLocal() bool {
	if c.apiURLSet || c.apiKeySet {
		return false
	}
	_, url := c.lookupEnv(EnvAPIURL)
	_, key := c.lookupEnv(EnvAPIKey)
	return !url && !key
}

// errNoServer is New's error when no Dispatch server is configured and
// local mode is not linked into the program.
var errNoServer = errors.New("dispatch: no Dispatch server configured: set " + EnvAPIURL + " and " + EnvAPIKey + " (for a server started with `dispatch test`, as its banner prints them) or pass WithAPIURL and WithAPIKey; or add " + localmode.Import + " to the program to run a local Dispatch server in this process")

// errLocalNotLinked is New's error for WithLocalServer when local mode is
// not linked into the program.
var errLocalNotLinked = errors.New("dispatch: WithLocalServer: local mode is not linked into this program: add " + localmode.Import + " to run a local Dispatch server in this process")

func init() {
	localmode.EmbeddedIn = func(d any) localmode.Server {
		if d, ok := d.(*Dispatch); ok && d != nil && d.local != nil {
			return d.local
		}
		return nil
	}
}

// startLocal starts the embedded server and points the configuration at it.
// The endpoint's listener is made first so that the server knows the
// endpoint URL; ListenAndServe and Start serve on it.
func (d *Dispatch) startLocal() (err error) {
	cfg := d.cfg
	start := cfg.localStarter
	if !cfg.localStarterSet {
		start = localmode.Registered()
	}
	if start == nil {
		if cfg.forceLocal() {
			return errLocalNotLinked
		}
		return errNoServer
	}
	defer func() {
		if err != nil && d.endpointLn != nil {
			d.endpointLn.Close() // New fails: nobody else will
			d.endpointLn = nil
		}
	}()
	if cfg.endpointURL == "" {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return fmt.Errorf("dispatch: local mode: listening for the endpoint: %w", err)
		}
		d.endpointLn = ln
		cfg.endpointURL = "http://" + ln.Addr().String()
	}
	lc := localmode.Config{Endpoint: cfg.endpointURL, Logger: cfg.logger}
	if t, _ := cfg.lookupEnv(EnvLocalTransport); t != "http" {
		lc.Run = d.runLocal
		d.localRun = true
	}
	switch {
	case cfg.localPGSet:
		lc.Postgres = cfg.localPostgres
	case cfg.localDir != "":
		lc.StateDir = cfg.localDir
		lc.FullSync = cfg.localFullSync
	case cfg.localServerSet: // WithLocalServer("")
		lc.Memory = true
	default:
		dir, err := stateDir(cfg.lookupEnv, programName())
		if err != nil {
			return err
		}
		lc.StateDir, lc.FullSync = dir, cfg.localFullSync
	}
	srv, err := start(context.Background(), lc)
	if err != nil {
		return fmt.Errorf("dispatch: local mode: %w", err)
	}
	d.local, d.stateDir = srv, lc.StateDir
	cfg.apiURL, cfg.apiKey = srv.URL(), srv.APIKey()
	if cfg.verificationKey == nil {
		// The embedded server signs with its own key. A key given
		// explicitly still wins, as every option does.
		cfg.verificationKey = srv.PublicKey()
	}
	where := "in memory"
	switch {
	case lc.Postgres != "":
		where = "calls in PostgreSQL at " + redactedURL(lc.Postgres)
	case lc.StateDir != "":
		where = "state in " + lc.StateDir
	}
	d.log.Warn().Msgf("dispatch: no %s or %s: running a local Dispatch server in this process at %s (%s); endpoint %s", EnvAPIURL, EnvAPIKey, srv.URL(), where, cfg.endpointURL)
	return nil
}

// redactedURL is the URL s with its password hidden, for a log.
func redactedURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(a URL that does not parse)"
	}
	return u.Redacted()
}

// runLocal is the in-process Run of the embedded server: the endpoint's
// Run after decoding, the code path of Handler's function service, so
// that statuses, panics and state encoding are those of HTTP.
//
// Like an HTTP request to a listener not yet served, a run waits until the
// program serves its endpoint (Start, ListenAndServe, Serve or Handler), so
// that calls recovered from the state directory do not run before the
// program is ready; the attempt timeout bounds the wait.
func (d *Dispatch) runLocal(ctx context.Context, req *sdkv1.RunRequest) (*sdkv1.RunResponse, error) {
	select {
	case <-d.serving:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	res, err := d.rt.run(ctx, req)
	if err != nil {
		return nil, err
	}
	return res, nil
}

// inprocDispatch is the DispatchService client of local mode when its
// server calls the functions in process: the SDK's Dispatch requests are
// handed to the server as values too (localmode.Server.Dispatch, which
// copies them and checks them as its HTTP handler does), so that nothing
// of a workflow's path goes through HTTP. An HTTP Dispatch request was a
// fifth of the CPU of `dispatch bench` (b) in process (net/http and
// connect on both sides, protobuf both ways). With
// DISPATCH_LOCAL_TRANSPORT=http, Dispatch keeps HTTP too, as a separate
// server would be reached; WithHTTPClient and WithProtocol apply only
// then.
type inprocDispatch struct {
	sdkv1connect.DispatchServiceClient // nil: only Dispatch is called
	srv                                localmode.Server
	auth                               string // the Authorization header, as bearer would set it
}

func (c *inprocDispatch) Dispatch(ctx context.Context, req *connect.Request[sdkv1.DispatchRequest]) (*connect.Response[sdkv1.DispatchResponse], error) {
	req.Header().Set("Authorization", c.auth)
	return c.srv.Dispatch(ctx, req)
}

// markServing opens the in-process path of local mode (runLocal).
func (d *Dispatch) markServing() {
	if d.serving != nil {
		d.servingOnce.Do(func() { close(d.serving) })
	}
}
