package server_test

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	sdkv1 "buf.build/gen/go/stealthrocket/dispatch-proto/protocolbuffers/go/dispatch/sdk/v1"
	"github.com/matryer/is"
	"github.com/rs/zerolog"

	"github.com/dispatchkit/dispatch/internal/testsync"
	"github.com/dispatchkit/dispatch/server"
)

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer = testsync.Buffer

func TestRestartRecoversCalls(t *testing.T) {
	is := is.New(t)
	dir := t.TempDir()
	ep := newTestEndpoint(t, "")
	logs := &syncBuffer{}
	start := func() *bundle {
		return startServer(t, ep, server.Config{
			Endpoint:   ep.URL(),
			StateDir:   dir,
			MinBackoff: time.Millisecond,
			MaxBackoff: 10 * time.Millisecond,
			Logger:     zerolog.New(logs),
		})
	}

	blocked := make(chan struct{}, 10)
	release := make(chan struct{})
	var releaseOnce sync.Once
	defer releaseOnce.Do(func() { close(release) })
	ep.handle("slow", func(req *sdkv1.RunRequest) (*sdkv1.RunResponse, error) {
		blocked <- struct{}{}
		<-release
		return output("slow " + strOf(req.GetInput())), nil
	})
	ep.handle("echo", echo)
	out := make(chan *sdkv1.RunRequest, 10)
	ep.handle("parent", gather(out, 3, 3, time.Hour, 1,
		child(1, "echo", "a"), child(2, "slow", "b"), child(3, "echo", "c")))
	ep.handle("sleeper", gather(out, 1, 1, 2*time.Second, 1))

	b1 := start()
	srv1 := b1.srv
	key := srv1.VerificationKey()
	ids := b1.dispatch(t, call("parent", ""), call("sleeper", ""))
	recv(t, blocked) // the slow child is in flight
	waitFor(t, "echo children done", func() bool { return ep.count("echo") == 2 && srv1.Live() == 3 })
	is.NoErr(srv1.Close())

	fi, err := os.Stat(filepath.Join(dir, "signing.key"))
	is.NoErr(err)
	is.Equal(fi.Mode().Perm(), os.FileMode(0o600))

	releaseOnce.Do(func() { close(release) }) // the old attempt's answer is lost
	srv2 := start().srv
	is.Equal(srv2.VerificationKey(), key) // the signing key is kept
	is.True(strings.Contains(logs.String(), "recovered calls in flight"))
	is.True(strings.Contains(logs.String(), `"calls":3`)) // parent, slow child, sleeper

	got := map[string]*sdkv1.RunRequest{}
	for range 2 {
		r := recv(t, out)
		got[r.GetDispatchId()] = r
	}
	res := got[ids[0]].GetPollResult().GetResults()
	is.Equal(len(res), 3) // results from before and after the restart
	outs := map[uint64]string{}
	for _, r := range res {
		outs[r.GetCorrelationId()] = strOf(r.GetOutput())
	}
	is.Equal(outs, map[uint64]string{1: "a", 2: "slow b", 3: "c"})
	is.Equal(len(got[ids[1]].GetPollResult().GetResults()), 0) // the sleep survived
	waitFor(t, "all done", func() bool { return srv2.Live() == 0 })
	is.Equal(ep.count("echo"), 2) // finished children are not run again
}
