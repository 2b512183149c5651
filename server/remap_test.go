package server_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	sdkv1 "buf.build/gen/go/stealthrocket/dispatch-proto/protocolbuffers/go/dispatch/sdk/v1"
	"github.com/matryer/is"
	"github.com/rs/zerolog"

	"github.com/dispatchkit/dispatch/internal/store"
	"github.com/dispatchkit/dispatch/server"
)

// closedEndpoint returns the URL of a loopback port nobody listens on.
func closedEndpoint(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	ln.Close()
	return url
}

// TestEndpointRemap runs a program's calls on a default endpoint that does
// not answer (the endpoint of a previous run, in local mode), restarts the
// SQLite-backed server with other defaults, and checks that the calls on
// the old default move to the new one and complete there, while a call
// that named another endpoint stays.
func TestEndpointRemap(t *testing.T) {
	tests := []struct {
		name     string
		restarts []string // defaults of the starts after the first: "A" (the first), "B" (working), or ""
	}{
		{"new default", []string{"B"}},
		{"no default keeps the previous one", []string{"", "B"}},
		{"same default moves nothing", []string{"A", "B"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			dir := t.TempDir()
			a, other := closedEndpoint(t), closedEndpoint(t)
			ep := newTestEndpoint(t, "")
			ep.handle("echo", echo)
			logs := &syncBuffer{}
			start := func(endpoint string) *bundle {
				return startServer(t, ep, server.Config{
					Endpoint: endpoint,
					// The first default, for the start without a
					// default that keeps the calls there, and the
					// endpoint a call names.
					AllowEndpoints: []string{a, other},
					StateDir:       dir,
					MinBackoff:     time.Millisecond,
					MaxBackoff:     10 * time.Millisecond,
					Logger:         zerolog.New(logs),
				})
			}

			b := start(a)
			srv := b.srv
			explicit := call("echo", "elsewhere")
			explicit.Endpoint = other
			ids := b.dispatch(t, call("echo", "0"), call("echo", "1"), explicit, call("echo", "2"))
			stay := ids[2]
			ids = append(ids[:2], ids[3])
			waitFor(t, "failed attempts on A", func() bool {
				c, err := srv.Store().GetCall(context.Background(), ids[2])
				return err == nil && c.Attempts > 0
			})
			is.NoErr(srv.Close())

			for _, name := range tt.restarts {
				endpoint := map[string]string{"A": a, "B": ep.URL(), "": ""}[name]
				srv = start(endpoint).srv
				if name != "B" {
					is.NoErr(srv.Close())
				}
			}

			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			for i, id := range ids {
				o, err := srv.Result(ctx, id)
				is.NoErr(err)
				is.Equal(o.Status, sdkv1.Status_STATUS_OK)
				is.Equal(strOf(o.Result.GetOutput()), fmt.Sprint(i)) // ran at B
				c, err := srv.Store().GetCall(context.Background(), id)
				is.NoErr(err)
				is.Equal(c.Endpoint, ep.URL())
			}
			c, err := srv.Store().GetCall(context.Background(), stay)
			is.NoErr(err)
			is.Equal(c.Endpoint, other)          // named explicitly: not moved
			is.True(c.State != store.Done)       // and still trying there
			is.Equal(ep.count("echo"), len(ids)) // only the moved calls ran at B
			want := fmt.Sprintf("moved 3 calls from the previous endpoint %s to %s", a, ep.URL())
			is.Equal(strings.Count(logs.String(), "moved "), 1) // once, on the start with B
			is.True(strings.Contains(logs.String(), want))
		})
	}
}
