package server_test

import (
	"context"
	"testing"
	"time"

	sdkv1 "buf.build/gen/go/stealthrocket/dispatch-proto/protocolbuffers/go/dispatch/sdk/v1"
	"github.com/matryer/is"

	"github.com/dispatchkit/dispatch/server"
)

// TestAttemptsKept checks that every Run request of a call is kept for
// inspection, in order, whether it is still in the call's row (the latest
// attempts) or was moved to the attempts table (16 at a time), with both
// stores and across a restart of the SQLite one.
func TestAttemptsKept(t *testing.T) {
	tests := []struct {
		name     string
		failures int // TEMPORARY_ERROR answers before the success
		memory   bool
	}{
		{"one attempt", 0, false},
		{"under a group", 9, false},
		{"exactly a group", 15, false},
		{"over two groups", 40, false},
		{"over two groups, memory", 40, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			dir := t.TempDir()
			flaky := newFlakyEndpoint(t, tt.failures, statusAnswer(sdkv1.Status_STATUS_TEMPORARY_ERROR))
			b := setup(t, func(c *server.Config) {
				c.Memory, c.StateDir = tt.memory, dir
				c.MaxBackoff = time.Millisecond
			}, allow(flaky.srv.URL))
			c := call("flaky", "v")
			c.Endpoint = flaky.srv.URL
			id := b.dispatch(t, c)[0]
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			o, err := b.srv.Result(ctx, id)
			is.NoErr(err)
			is.Equal(o.Status, sdkv1.Status_STATUS_OK)

			check := func(s *server.Server) {
				atts, err := s.Store().Attempts(ctx, id)
				is.NoErr(err)
				is.Equal(len(atts), tt.failures+1) // every attempt, once
				for i, a := range atts {
					is.Equal(a.N, i+1) // in order
					is.Equal(a.CallID, id)
					want := sdkv1.Status_STATUS_TEMPORARY_ERROR
					if i == tt.failures {
						want = sdkv1.Status_STATUS_OK
					}
					is.Equal(sdkv1.Status(a.Status), want)
					is.True(!a.Start.IsZero())
				}
				row, err := s.Store().GetCall(ctx, id)
				is.NoErr(err)
				is.Equal(row.Attempts, tt.failures+1)
			}
			check(b.srv)
			if tt.memory {
				return
			}
			is.NoErr(b.srv.Close())
			srv2, err := server.New(server.Config{StateDir: dir, Endpoint: b.ep.URL()})
			is.NoErr(err)
			defer srv2.Close()
			check(srv2) // the same after a restart, read from the file
		})
	}
}

// TestSignedWithoutEarlyStart runs a sequential workflow and a gather
// with early start off, so that each child's request follows the commit
// of its parent's poll, against an endpoint that verifies every request:
// every request is signed as it is sent, whichever commit it follows.
func TestSignedWithoutEarlyStart(t *testing.T) {
	tests := []struct {
		name   string
		memory bool
	}{
		{"memory", true},
		{"sqlite", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			b := setup(t, func(c *server.Config) {
				c.Memory = tt.memory
				if !tt.memory {
					c.StateDir = t.TempDir()
				}
				server.WithNoEarlyStart(c)
			})
			const steps = 10
			done := make(chan string, 1)
			b.ep.handle("echo", echo)
			b.ep.handle("seq", stepper(steps, done))
			b.dispatch(t, call("seq", ""))
			recv(t, done)
			// A gather of two children answering at once.
			out := make(chan *sdkv1.RunRequest, 1)
			b.ep.handle("two", gather(out, 2, 2, time.Hour, 1, child(1, "echo", "a"), child(2, "echo", "b")))
			b.dispatch(t, call("two", ""))
			is.Equal(len(recv(t, out).GetPollResult().GetResults()), 2)
		})
	}
}
