package server_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	sdkv1 "buf.build/gen/go/stealthrocket/dispatch-proto/protocolbuffers/go/dispatch/sdk/v1"
	"github.com/matryer/is"
	"github.com/rs/zerolog"

	"github.com/dispatchkit/dispatch/internal/pgtest"
	"github.com/dispatchkit/dispatch/internal/store/pgstore"
	"github.com/dispatchkit/dispatch/server"
)

// chain is a workflow of steps sequential calls to child: step k calls it
// with the input "<in>.<k>", and the workflow returns the outputs joined
// by commas. The coroutine state is "<in>|<outputs so far>".
func chain(child string, steps int) fn {
	return func(req *sdkv1.RunRequest) (*sdkv1.RunResponse, error) {
		in, outs := strOf(req.GetInput()), []string(nil)
		if pr := req.GetPollResult(); pr != nil {
			var done string
			in, done, _ = strings.Cut(string(pr.GetCoroutineState()), "|")
			if done != "" {
				outs = strings.Split(done, ",")
			}
			for _, r := range pr.GetResults() {
				outs = append(outs, strOf(r.GetOutput()))
			}
		}
		if len(outs) == steps {
			return output(strings.Join(outs, ",")), nil
		}
		next := call(child, fmt.Sprintf("%s.%d", in, len(outs)))
		return poll(in+"|"+strings.Join(outs, ","), 1, 1, time.Hour, next), nil
	}
}

// A server on PostgreSQL runs workflows, and a new server on the same
// database, after the first was closed mid-workflow, finishes every one
// with the right result, signing with the same key.
func TestPostgresRestart(t *testing.T) {
	is := is.New(t)
	url := pgtest.URL(t)
	ep := newTestEndpoint(t, "")
	logs := &syncBuffer{}
	start := func() *bundle {
		return startServer(t, ep, server.Config{
			Endpoint:   ep.URL(),
			Postgres:   url,
			MinBackoff: time.Millisecond,
			MaxBackoff: 10 * time.Millisecond,
			Logger:     zerolog.New(logs),
		})
	}
	blocked := make(chan struct{}, 10)
	release := make(chan struct{})
	var releaseOnce sync.Once
	defer releaseOnce.Do(func() { close(release) })
	ep.handle("step", func(req *sdkv1.RunRequest) (*sdkv1.RunResponse, error) {
		if strOf(req.GetInput()) == "w0.1" { // the second step of the first workflow
			blocked <- struct{}{}
			<-release
		}
		return echo(req)
	})
	ep.handle("chain", chain("step", 3))
	ep.handle("echo", echo)
	out := make(chan *sdkv1.RunRequest, 10)
	ep.handle("gather", gather(out, 3, 3, time.Hour, 1,
		child(1, "echo", "a"), child(2, "echo", "b"), child(3, "echo", "c")))

	b1 := start()
	key := b1.srv.VerificationKey()
	const n = 20
	var calls []*sdkv1.Call
	for i := range n {
		calls = append(calls, call("chain", fmt.Sprintf("w%d", i)))
	}
	ids := b1.dispatch(t, calls...)
	recv(t, blocked) // the first workflow is mid-way
	is.NoErr(b1.srv.Close())
	releaseOnce.Do(func() { close(release) }) // the old attempt's answer is lost

	b2 := start()
	is.Equal(b2.srv.VerificationKey(), key) // the signing key is the database's
	is.True(strings.Contains(logs.String(), "recovered calls in flight"))
	gid := b2.dispatch(t, call("gather", ""))[0]

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i, id := range ids {
		o, err := b2.srv.Result(ctx, id)
		is.NoErr(err)
		is.Equal(o.Status, sdkv1.Status_STATUS_OK)
		want := fmt.Sprintf("w%d.0,w%d.1,w%d.2", i, i, i)
		is.Equal(strOf(o.Result.GetOutput()), want) // every step's result, across the restart
	}
	res := recv(t, out).GetPollResult().GetResults()
	is.Equal(len(res), 3)
	o, err := b2.srv.Result(ctx, gid)
	is.NoErr(err)
	is.Equal(strOf(o.Result.GetOutput()), "done")
	waitFor(t, "all done", func() bool { return b2.srv.Live() == 0 })
	is.True(ep.count("step") >= 3*n) // each step ran, the interrupted one again
	is.True(strings.Contains(logs.String(), "made a new signing key, kept in the database"))
}

// A single-owner store (an older server, a tool that writes) and the
// replicas of a database refuse each other, with a message that names the
// holder and says what to do; the database is free again once it is
// closed.
func TestPostgresSingleOwnerRefused(t *testing.T) {
	is := is.New(t)
	url := pgtest.URL(t)
	ctx := context.Background()
	owner, err := pgstore.Open(ctx, url, pgstore.Options{})
	is.NoErr(err)
	_, err = server.New(server.Config{Postgres: url})
	is.True(err != nil)
	msg := err.Error()
	is.True(strings.HasPrefix(msg, "server: "))  // names the holder
	is.True(strings.Contains(msg, "--postgres")) // what to do
	is.NoErr(owner.Close())

	first, err := server.New(server.Config{Postgres: url})
	is.NoErr(err)
	second, err := server.New(server.Config{Postgres: url}) // replicas share it
	is.NoErr(err)
	is.Equal(second.VerificationKey(), first.VerificationKey()) // one signing key
	_, err = pgstore.Open(ctx, url, pgstore.Options{})
	is.True(err != nil) // and keep the single owner out
	is.NoErr(first.Close())
	is.NoErr(second.Close())
}
