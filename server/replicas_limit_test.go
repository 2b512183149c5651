package server_test

import (
	"fmt"
	"testing"

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
			ep, peak, openGate := heldEndpoint(t)
			defer openGate()
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
			waitFor(t, "both replicas fill their shares", func() bool { return peak.Load() >= int32(most) })
			is.Equal(peak.Load(), int32(most)) // not limit per replica
			openGate()
			for i, id := range ids {
				is.Equal(strOf(result(t, bs[owners[i]].srv, id).Result.GetOutput()), fmt.Sprint(i))
			}
			is.True(peak.Load() <= int32(most))
		})
	}
}
