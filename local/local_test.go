package local_test

import (
	"os"
	"testing"

	"github.com/matryer/is"
	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/dispatchkit/dispatch"
	"github.com/dispatchkit/dispatch/internal/pgtest"
	"github.com/dispatchkit/dispatch/local"
)

// TestMain checks that no test leaks a goroutine, and clears the DISPATCH_*
// variables, which New reads, so that a developer's shell does not change
// what the tests see.
func TestMain(m *testing.M) {
	for _, v := range []string{dispatch.EnvAPIKey, dispatch.EnvAPIURL, dispatch.EnvEndpointURL, dispatch.EnvVerificationKey, dispatch.EnvTrace, dispatch.EnvStateDir} {
		os.Unsetenv(v)
	}
	goleak.VerifyTestMain(pgtest.Main(m))
}

// TestServer checks that Server finds the server local mode embedded, and
// only that one.
func TestServer(t *testing.T) {
	tests := []struct {
		name     string
		opts     []dispatch.Option
		embedded bool
		onDisk   bool // the embedded server keeps its calls in a directory
	}{
		{name: "WithLocalServer, in memory", opts: []dispatch.Option{dispatch.WithLocalServer("")}, embedded: true},
		{name: "WithLocalServer, in a directory", opts: []dispatch.Option{dispatch.WithLocalServer(t.TempDir())}, embedded: true, onDisk: true},
		{name: "a separate server", opts: []dispatch.Option{dispatch.WithAPIURL("http://dispatch.invalid:4450"), dispatch.WithAPIKey("k")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			d, err := dispatch.New(append([]dispatch.Option{dispatch.WithZerolog(zerolog.Nop())}, tt.opts...)...)
			is.NoErr(err)
			defer d.Close()
			srv := local.Server(d)
			is.Equal(srv != nil, tt.embedded) // an embedded server, or none
			if tt.embedded {
				is.Equal(d.APIURL(), srv.URL())         // the instance dispatches to it
				is.Equal(srv.APIKey(), "test")          // with the server's key
				is.Equal(d.StateDir() != "", tt.onDisk) // in memory or on disk
			}
		})
	}
	is.New(t).True(local.Server(nil) == nil) // no instance, no server
}
