package server_test

import (
	"fmt"
	"sync/atomic"
	"testing"

	sdkv1 "buf.build/gen/go/stealthrocket/dispatch-proto/protocolbuffers/go/dispatch/sdk/v1"
	"github.com/matryer/is"

	"github.com/dispatchkit/dispatch/server"
)

// Two replicas send an endpoint no more than Config.MaxConcurrency
// requests at once between them: the limit is the cluster's, each
// replica's the half of it (ceil(limit / live replicas)). Before the
// split each replica had the whole limit, and the peak was twice it.
func TestReplicasClusterEndpointLimit(t *testing.T) {
	tests := []struct {
		name  string
		limit int
	}{
		{"even", 4},
		{"odd, rounded up", 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			ep := newTestEndpoint(t, "")
			gate, openGate := opener()
			defer openGate()
			var inflight, peak atomic.Int32
			ep.handle("held", func(req *sdkv1.RunRequest) (*sdkv1.RunResponse, error) {
				n := inflight.Add(1)
				defer inflight.Add(-1)
				for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
				}
				<-gate
				return echo(req)
			})
			bs := startReplicas(t, 2, ep, nil, func(_ int, c *server.Config) {
				c.InitialConcurrency, c.MaxConcurrency = tt.limit, tt.limit
			})
			// Each replica's share, rounded up: the most in flight at once.
			most := 2 * ((tt.limit + 1) / 2)
			var ids []string
			var owners []int
			for i := range 60 { // 30 calls at each replica, over its partitions
				ids = append(ids, bs[i%2].dispatch(t, call("held", fmt.Sprint(i)))...)
				owners = append(owners, i%2)
			}
			waitFor(t, "both replicas fill their shares", func() bool { return inflight.Load() >= int32(most) })
			is.Equal(peak.Load(), int32(most)) // not limit per replica
			openGate()
			for i, id := range ids {
				is.Equal(strOf(result(t, bs[owners[i]].srv, id).Result.GetOutput()), fmt.Sprint(i))
			}
			is.True(peak.Load() <= int32(most))
		})
	}
}
