package dispatch_test

import (
	"context"
	"net"
	"testing"

	"github.com/rs/zerolog"

	"github.com/dispatchkit/dispatch"
	"github.com/dispatchkit/dispatch/local"
	"github.com/dispatchkit/dispatch/server"
)

// sdkMode is a way a program finds its Dispatch server, for the tests of
// the local server's own API (keys, typed waits, cancel) through the SDK.
type sdkMode struct {
	name string
	// start returns a started instance (the default one) and its server.
	start func(t *testing.T) (*dispatch.Dispatch, *server.Server)
}

// sdkModes are local mode (the embedded server, in memory) and a separate
// server configured as `dispatch test` prints, reached over HTTP.
var sdkModes = []sdkMode{
	{
		name: "local mode",
		start: func(t *testing.T) (*dispatch.Dispatch, *server.Server) {
			return startLocal(t, "")
		},
	},
	{
		name: "a separate server",
		start: func(t *testing.T) (*dispatch.Dispatch, *server.Server) {
			t.Helper()
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			endpoint := "http://" + ln.Addr().String()
			ln.Close()
			srv, err := server.New(server.Config{Endpoint: endpoint, Memory: true, APIKey: "secret"})
			if err != nil {
				t.Fatal(err)
			}
			if err := srv.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { srv.Close() })
			d, err := dispatch.New(
				dispatch.WithAPIURL(srv.URL()), dispatch.WithAPIKey("secret"),
				dispatch.WithEndpointURL(endpoint), dispatch.WithVerificationKey(srv.VerificationKey()),
				dispatch.WithZerolog(zerolog.Nop()))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { d.Close() })
			if err := d.Start(); err != nil {
				t.Fatal(err)
			}
			return d, srv
		},
	},
}

// startLocal starts an instance in local mode, its calls in dir (in
// memory if ""), closed when the test ends.
func startLocal(t *testing.T, dir string) (*dispatch.Dispatch, *server.Server) {
	t.Helper()
	d, err := dispatch.New(dispatch.WithLocalServer(dir), dispatch.WithZerolog(zerolog.Nop()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	return d, local.Server(d)
}
