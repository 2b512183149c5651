package server_test

import (
	"net/http"
	"strconv"
	"testing"
	"time"

	sdkv1 "buf.build/gen/go/stealthrocket/dispatch-proto/protocolbuffers/go/dispatch/sdk/v1"
	"github.com/matryer/is"
	"google.golang.org/protobuf/types/known/durationpb"
)

// centuries is a duration past what a time.Time in unix nanoseconds holds
// (year 2262): AsDuration saturates it to about 292 years.
var centuries = &durationpb.Duration{Seconds: 300 * 365 * 24 * 3600}

// Durations too long to add to now in unix nanoseconds must saturate, not
// wrap around into the past: a call that expires in 300 years does not
// time out at once, and a poll that waits 300 years for a result is not
// resumed before the result is there.
func TestHugeDurations(t *testing.T) {
	tests := []struct {
		name string
		// child makes the parent's child call; its result is awaited
		// with max_wait.
		child   func() *sdkv1.Call
		maxWait *durationpb.Duration
		want    string // output the parent's first resume carries
	}{
		{
			name: "child expiration",
			child: func() *sdkv1.Call {
				c := child(1, "echo", "x")
				c.Expiration = centuries
				return c
			},
			maxWait: durationpb.New(time.Hour),
			want:    "x",
		},
		{
			name:    "poll max_wait",
			child:   func() *sdkv1.Call { return child(1, "slow", "y") },
			maxWait: centuries,
			want:    "slow y",
		},
		{
			name:    "tail call expiration",
			child:   func() *sdkv1.Call { return child(1, "tail", "z") },
			maxWait: durationpb.New(time.Hour),
			want:    "z",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			b := setup(t)
			b.ep.handle("echo", echo)
			b.ep.handle("slow", func(req *sdkv1.RunRequest) (*sdkv1.RunResponse, error) {
				time.Sleep(300 * time.Millisecond)
				return output("slow " + strOf(req.GetInput())), nil
			})
			b.ep.handle("tail", func(req *sdkv1.RunRequest) (*sdkv1.RunResponse, error) {
				tc := call("echo", strOf(req.GetInput()))
				tc.Expiration = centuries
				return &sdkv1.RunResponse{Directive: &sdkv1.RunResponse_Exit{Exit: &sdkv1.Exit{TailCall: tc}}}, nil
			})
			out := make(chan *sdkv1.RunRequest, 1)
			b.ep.handle("parent", func(req *sdkv1.RunRequest) (*sdkv1.RunResponse, error) {
				if req.GetInput() != nil {
					p := poll("", 1, 1, time.Hour, tt.child())
					p.GetPoll().MaxWait = tt.maxWait
					return p, nil
				}
				out <- req
				return output("done"), nil
			})
			b.dispatch(t, call("parent", ""))
			r := recv(t, out).GetPollResult().GetResults()
			is.Equal(len(r), 1) // resumed by the result, not at once
			is.True(r[0].GetError() == nil)
			is.Equal(strOf(r[0].GetOutput()), tt.want)
			for _, req := range b.ep.requests("echo") {
				// The expiration sent to the function is not in the past.
				is.True(req.GetExpirationTime().AsTime().After(req.GetCreationTime().AsTime()))
			}
			waitFor(t, "done", func() bool { return b.srv.Live() == 0 })
		})
	}
}

// A wake-up that is no longer needed (the poll was resumed by its results
// before max_wait, the call finished) leaves the engine's timers at once:
// it must not keep a finished call in memory until its max_wait or
// expiration passes.
func TestTimersCancelled(t *testing.T) {
	tests := []struct {
		name  string
		steps int  // sequential polls, each resumed by one child's result
		flaky bool // the child fails once and is retried
	}{
		{"one poll", 1, false},
		{"ten polls", 10, false},
		{"retried child", 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			flaky := newFlakyEndpoint(t, 1, httpAnswer(http.StatusServiceUnavailable))
			b := setup(t, allow(flaky.srv.URL))
			b.ep.handle("echo", echo)
			b.ep.handle("steps", func(req *sdkv1.RunRequest) (*sdkv1.RunResponse, error) {
				n := 0
				if req.GetInput() == nil {
					n, _ = strconv.Atoi(stateOf(req))
					if len(req.GetPollResult().GetResults()) != 1 {
						return failure(sdkv1.Status_STATUS_PERMANENT_ERROR, "no result"), nil
					}
				}
				if n == tt.steps {
					return output("done"), nil
				}
				c := child(uint64(n), "echo", "x")
				if tt.flaky {
					c.Endpoint = flaky.srv.URL
				}
				return poll(strconv.Itoa(n+1), 1, 1, time.Hour, c), nil
			})
			b.dispatch(t, call("steps", ""))
			waitFor(t, "done", func() bool { return b.srv.Live() == 0 })
			is.Equal(b.ep.count("steps"), tt.steps+1)
			is.Equal(b.srv.Timers(), 0) // no wake-up left behind
		})
	}
}

// A child's expiration is capped at its parent's (scheduler/doc.go), and a
// tail call that sets its own expiration keeps that cap: a child must not
// outlive the parent that waits for it.
func TestTailCallExpirationCapped(t *testing.T) {
	tests := []struct {
		name    string
		tailExp time.Duration
		want    time.Duration // expiration of the tail call's run, from the parent's creation
	}{
		{"longer than the parent's", time.Hour, time.Minute},
		{"shorter than the parent's", 10 * time.Second, 10 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			b := setup(t)
			b.ep.handle("echo", echo)
			b.ep.handle("tail", func(req *sdkv1.RunRequest) (*sdkv1.RunResponse, error) {
				tc := call("echo", strOf(req.GetInput()))
				tc.Expiration = durationpb.New(tt.tailExp)
				return &sdkv1.RunResponse{Directive: &sdkv1.RunResponse_Exit{Exit: &sdkv1.Exit{TailCall: tc}}}, nil
			})
			out := make(chan *sdkv1.RunRequest, 1)
			b.ep.handle("parent", gather(out, 1, 1, time.Hour, 1, child(1, "tail", "x")))
			p := call("parent", "")
			p.Expiration = durationpb.New(time.Minute)
			b.dispatch(t, p)
			r := recv(t, out)
			is.Equal(strOf(r.GetPollResult().GetResults()[0].GetOutput()), "x")
			echoes := b.ep.requests("echo")
			is.Equal(len(echoes), 1)
			parentCreated := r.GetCreationTime().AsTime()
			got := echoes[0].GetExpirationTime().AsTime().Sub(parentCreated)
			is.True(got <= tt.want+time.Second && got >= tt.want-time.Second) // capped at the parent's expiration
		})
	}
}
