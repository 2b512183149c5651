package dispatch

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/dispatchkit/dispatch/server"
	"github.com/matryer/is"
)

// freeAddr returns a loopback address nobody listens on right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestModes runs a function end to end in both ways a program finds its
// Dispatch server: embedded (local mode), and a separate server configured
// by the variables that `dispatch test` prints, with the endpoint served on
// the address of DISPATCH_ENDPOINT_URL and results fetched over HTTP.
func TestModes(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T) []Option
	}{
		{
			name: "local mode, no variables set",
			setup: func(t *testing.T) []Option {
				return []Option{env(map[string]string{EnvStateDir: t.TempDir()})}
			},
		},
		{
			name: "a separate server, configured like dispatch test's banner",
			setup: func(t *testing.T) []Option {
				endpoint := "http://" + freeAddr(t)
				srv, err := server.New(server.Config{Endpoint: endpoint, Memory: true, APIKey: "secret"})
				if err != nil {
					t.Fatal(err)
				}
				if err := srv.Start(context.Background()); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { srv.Close() })
				return []Option{env(map[string]string{
					EnvAPIURL:          srv.URL(),
					EnvAPIKey:          "secret",
					EnvEndpointURL:     endpoint,
					EnvVerificationKey: srv.VerificationKey(),
				})}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			d, err := New(tt.setup(t)...)
			is.NoErr(err)
			defer d.Close()
			is.NoErr(d.Start())
			SetDefault(d)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()

			n, err := rtDouble.DispatchAndWait(ctx, 21)
			is.NoErr(err)
			is.Equal(n, 42)

			// A failure comes back with its status and message.
			_, err = rtPanic.DispatchAndWait(ctx, "x")
			var e *Error
			is.True(errors.As(err, &e))
			is.Equal(e.Status, StatusPermanentError)
			is.True(strings.Contains(e.Message, "roottest: boom x"))
		})
	}
}
