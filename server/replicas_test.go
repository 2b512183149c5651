package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	sdkv1 "buf.build/gen/go/stealthrocket/dispatch-proto/protocolbuffers/go/dispatch/sdk/v1"
	"connectrpc.com/connect"
	"github.com/matryer/is"
	"github.com/rs/zerolog"

	"github.com/dispatchkit/dispatch/internal/pgtest"
	"github.com/dispatchkit/dispatch/internal/store"
	"github.com/dispatchkit/dispatch/server"
)

// Short leases, so that a failover takes 1.5 s rather than 10.
const (
	testLeaseTTL   = 1500 * time.Millisecond
	testRenewEvery = 300 * time.Millisecond
	testPartitions = 12
)

// startReplicas starts n replicas of one new database, sending calls to
// ep, and waits until the partitions are spread evenly over them. mut, if
// not nil, changes the configuration of each.
func startReplicas(t *testing.T, n int, ep *testEndpoint, logs []*syncBuffer, mut func(i int, c *server.Config)) []*bundle {
	t.Helper()
	url := pgtest.URL(t)
	var bs []*bundle
	for i := range n {
		bs = append(bs, startServer(t, ep, replicaConfig(t, url, i, ep, logs, mut)))
	}
	waitFor(t, "the partitions spread over the replicas", func() bool {
		return spread(bs, testPartitions)
	})
	return bs
}

// replicaConfig is the configuration of replica i of the database at url.
func replicaConfig(t *testing.T, url string, i int, ep *testEndpoint, logs []*syncBuffer, mut func(i int, c *server.Config)) server.Config {
	cfg := server.Config{
		Postgres:   url,
		Replica:    fmt.Sprintf("r%d", i),
		MinBackoff: time.Millisecond,
		MaxBackoff: 10 * time.Millisecond,
		Logger:     zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel),
	}
	if logs != nil {
		cfg.Logger = zerolog.New(logs[i]).With().Timestamp().Logger()
	}
	if ep != nil { // nil: the caller sets the endpoint
		cfg.Endpoint = ep.URL()
	}
	server.WithLeases(&cfg, testLeaseTTL, testRenewEvery, testPartitions)
	if mut != nil {
		mut(i, &cfg)
	}
	return cfg
}

// opener returns a channel for handlers to wait on and the func that
// closes it, which may be called more than once: by the test when it lets
// them go on, then by its deferred call, which lets them go on if the
// test failed before.
func opener() (<-chan struct{}, func()) {
	ch := make(chan struct{})
	var once sync.Once
	return ch, func() { once.Do(func() { close(ch) }) }
}

// spread reports whether the replicas of bs own every partition, each as
// many as the others (to one).
func spread(bs []*bundle, partitions int) bool {
	total, least, most := 0, partitions, 0
	seen := map[int]bool{}
	for _, b := range bs {
		ps := b.srv.Partitions()
		total += len(ps)
		least, most = min(least, len(ps)), max(most, len(ps))
		for _, p := range ps {
			seen[p] = true
		}
	}
	return total == partitions && len(seen) == partitions && most-least <= 1
}

// owner returns the bundle of the replica that runs partition p.
func owner(bs []*bundle, p int) (*bundle, int) {
	for i, b := range bs {
		if slices.Contains(b.srv.Partitions(), p) {
			return b, i
		}
	}
	return nil, -1
}

// stepGate holds the requests of a test endpoint until it opens, and counts
// them.
type stepGate struct {
	ch   chan struct{}
	once sync.Once
	mu   sync.Mutex
	seen map[string]bool
}

func newStepGate() *stepGate { return &stepGate{ch: make(chan struct{}), seen: map[string]bool{}} }

// wait counts in, once, and waits for the gate to open.
func (g *stepGate) wait(in string) {
	g.mu.Lock()
	g.seen[in] = true
	g.mu.Unlock()
	<-g.ch
}

func (g *stepGate) open() { g.once.Do(func() { close(g.ch) }) }

// n is how many distinct inputs waited.
func (g *stepGate) n() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.seen)
}

// fan is a workflow that gathers n calls of leaf (inputs "<in>.<k>") and
// returns how many distinct results it got.
func fan(leaf string, n int) fn {
	return func(req *sdkv1.RunRequest) (*sdkv1.RunResponse, error) {
		if pr := req.GetPollResult(); pr != nil {
			seen := map[string]bool{}
			for _, r := range pr.GetResults() {
				seen[strOf(r.GetOutput())] = true
			}
			return output(fmt.Sprint(len(seen))), nil
		}
		in := strOf(req.GetInput())
		var calls []*sdkv1.Call
		for k := range n {
			calls = append(calls, child(uint64(k), leaf, fmt.Sprintf("%s.%d", in, k)))
		}
		return poll("fan", int32(n), int32(n), time.Hour, calls...), nil
	}
}

// Three replicas run a few hundred three-step workflows and a few Gathers
// of 100 dispatched across them. One dies with every workflow at its
// second step and every Gather half done, and the two others take its
// partitions; then another dies with every workflow at its third step,
// and the last takes everything. Every workflow completes with the right
// result, none is lost, and only the steps cut by the deaths run again.
func TestReplicasFailover(t *testing.T) {
	is := is.New(t)
	ep := newTestEndpoint(t, "")
	logs := []*syncBuffer{{}, {}, {}}
	second, third := newStepGate(), newStepGate()
	defer second.open()
	defer third.open()
	ep.handle("step", func(req *sdkv1.RunRequest) (*sdkv1.RunResponse, error) {
		switch in := strOf(req.GetInput()); {
		case strings.HasSuffix(in, ".1"):
			second.wait(in)
		case strings.HasSuffix(in, ".2"):
			third.wait(in)
		}
		return echo(req)
	})
	ep.handle("chain", chain("step", 3))
	ep.handle("leaf", func(req *sdkv1.RunRequest) (*sdkv1.RunResponse, error) {
		in := strOf(req.GetInput())
		if in[len(in)-1]%2 == 0 { // half the leaves (even k) wait for the first death
			second.wait(in)
		}
		return echo(req)
	})
	const fanOut = 100
	ep.handle("fan", fan("leaf", fanOut))
	// Every workflow and half the Gather leaves, 600 Run requests, wait
	// at the gates at once, a third to a half of them at one replica,
	// whose partitions share one limit per endpoint (128 at first by
	// default): the limit starts at the maximum, for them all to be in
	// flight together. The limit is the cluster's, split between the
	// live replicas: 3 × 1024 leaves each of the three 1024, as before the
	// split (and more once one died).
	bs := startReplicas(t, 3, ep, logs, func(_ int, c *server.Config) {
		c.InitialConcurrency, c.MaxConcurrency = 3*1024, 3*1024
	})

	const n, perRequest, gathers = 300, 10, 6
	var ids []string
	for i := 0; i < n; i += perRequest {
		var calls []*sdkv1.Call
		for j := i; j < i+perRequest; j++ {
			calls = append(calls, call("chain", fmt.Sprintf("w%d", j)))
		}
		ids = append(ids, bs[(i/perRequest)%3].dispatch(t, calls...)...)
	}
	var gids []string
	for g := range gathers {
		gids = append(gids, bs[g%3].dispatch(t, call("fan", fmt.Sprintf("g%d", g)))...)
	}
	waitFor(t, "every workflow at its second step, every Gather half done", func() bool {
		return second.n() == n+gathers*fanOut/2
	})
	// counted is how many of ids are in the partitions of b.
	counted := func(ids []string, b *bundle) int {
		k := 0
		for _, id := range ids {
			if slices.Contains(b.srv.Partitions(), store.PartitionOf(id, testPartitions)) {
				k++
			}
		}
		return k
	}
	first := counted(ids, bs[2])
	t.Logf("%d workflows of %d in the partitions %v of the first replica that dies", first, n, bs[2].srv.Partitions())
	is.True(first > 0)
	start := time.Now()
	is.NoErr(bs[2].srv.Crash())
	second.open() // the dead replica's requests were cut: their outcomes are lost

	survivors := bs[:2]
	// Workflows dispatched during the failover go to the survivors.
	const later = 60
	for i := n; i < n+later; i += perRequest {
		var calls []*sdkv1.Call
		for j := i; j < i+perRequest; j++ {
			calls = append(calls, call("chain", fmt.Sprintf("w%d", j)))
		}
		ids = append(ids, survivors[(i/perRequest)%2].dispatch(t, calls...)...)
	}
	waitFor(t, "the survivors to own every partition", func() bool { return spread(survivors, testPartitions) })
	t.Logf("the survivors own every partition %v after the first death", time.Since(start))
	waitFor(t, "every workflow at its third step", func() bool { return third.n() == n+later })
	then := counted(ids, bs[1])
	t.Logf("%d workflows of %d in the partitions %v of the second replica that dies", then, n+later, bs[1].srv.Partitions())
	start = time.Now()
	is.NoErr(bs[1].srv.Crash())
	third.open()
	last := bs[0]
	waitFor(t, "the last replica to own every partition", func() bool { return spread(bs[:1], testPartitions) })
	t.Logf("the last replica owns every partition %v after the second death", time.Since(start))

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for i, id := range ids {
		o, err := last.srv.Result(ctx, id)
		is.NoErr(err)
		is.Equal(o.Status, sdkv1.Status_STATUS_OK)
		is.Equal(strOf(o.Result.GetOutput()), fmt.Sprintf("w%d.0,w%d.1,w%d.2", i, i, i))
	}
	for _, id := range gids {
		o, err := last.srv.Result(ctx, id)
		is.NoErr(err)
		is.Equal(strOf(o.Result.GetOutput()), fmt.Sprint(fanOut)) // every leaf's result, once
	}
	t.Logf("every workflow done %v after the second death", time.Since(start))
	again := map[string]int{}
	for in, k := range runs(ep, "step") {
		if k > 1 {
			again[in[strings.LastIndex(in, "."):]] += k - 1
		}
	}
	leafAgain := 0
	for _, k := range runs(ep, "leaf") {
		leafAgain += k - 1
	}
	t.Logf("ran again: %d second steps (%d workflows on the first dead replica), %d third steps (%d on the second), %d Gather leaves; of %d steps and %d leaves",
		again[".1"], first, again[".2"], then, leafAgain, 3*len(ids), gathers*fanOut)
	is.Equal(again[".0"], 0)
	is.True(again[".1"] >= 1 && again[".1"] <= first)
	is.True(again[".2"] >= 1 && again[".2"] <= then)
	waitFor(t, "nothing live", func() bool { return last.srv.Live() == 0 })
	for i, l := range logs[:2] {
		if !strings.Contains(l.String(), `"message":"acquired partition"`) || !strings.Contains(l.String(), `"epoch":`) {
			t.Errorf("replica %d logged no acquisition with its epoch", i)
		}
	}
	is.True(strings.Contains(logs[0].String()+logs[1].String(), "recovered calls in flight"))
}

// A keyed Dispatch is run by the owner of its key's partition: sent to
// another replica it is forwarded there, and gets the same ids as at the
// owner. Results can be waited for at any replica, over Go and HTTP, and
// calls cancelled at any replica.
func TestReplicasRouting(t *testing.T) {
	is := is.New(t)
	ep := newTestEndpoint(t, "")
	release, openRelease := opener()
	defer openRelease()
	running := make(chan string, 10)
	ep.handle("slow", func(req *sdkv1.RunRequest) (*sdkv1.RunResponse, error) {
		running <- req.GetDispatchId()
		<-release
		return echo(req)
	})
	ep.handle("echo", echo)
	ep.handle("sleeper", gather(nil, 1, 1, time.Hour, 1))
	bs := startReplicas(t, 2, ep, nil, nil)
	ctx := context.Background()

	t.Run("keyed dispatch at a non-owner", func(t *testing.T) {
		is := is.New(t)
		for _, key := range []string{"order-1", "order-2", "order-3", "order-4"} {
			own, i := owner(bs, store.PartitionOf(key, testPartitions))
			is.True(own != nil)
			other := bs[1-i]
			first, replayed, err := keyed(ctx, other.srv, other.client, []string{key}, call("echo", key))
			is.NoErr(err)
			is.Equal(replayed, "false") // the owner started it
			is.Equal(len(first), 1)
			is.Equal(store.PartitionOf(first[0], testPartitions), store.PartitionOf(key, testPartitions))
			again, replayed, err := keyed(ctx, own.srv, own.client, []string{key}, call("echo", key))
			is.NoErr(err)
			is.Equal(replayed, "true")
			is.Equal(again, first) // the same ids at the owner
			again, replayed, err = keyed(ctx, other.srv, other.client, []string{key}, call("echo", key))
			is.NoErr(err)
			is.Equal(replayed, "true")
			is.Equal(again, first) // and at the other again
			_, _, err = keyed(ctx, other.srv, other.client, []string{key}, call("echo", "other"))
			is.Equal(connect.CodeOf(err), connect.CodeAlreadyExists) // the owner's answer, forwarded
		}
	})

	t.Run("wait at a non-owner", func(t *testing.T) {
		is := is.New(t)
		id := bs[0].dispatch(t, call("slow", "x"))[0]
		is.Equal(recv(t, running), id)
		_, i := owner(bs, store.PartitionOf(id, testPartitions))
		other := bs[1-i]
		got := make(chan *server.Outcome, 1)
		go func() {
			o, err := other.srv.Result(ctx, id)
			if err != nil {
				t.Errorf("Result at the replica that does not run the call: %v", err)
			}
			got <- o
		}()
		req, err := http.NewRequest(http.MethodGet, other.srv.URL()+"/dispatch.local.v1/calls/"+id+"/result", nil)
		is.NoErr(err)
		req.Header.Set("Authorization", "Bearer "+other.srv.APIKey())
		res, err := http.DefaultClient.Do(req)
		is.NoErr(err)
		res.Body.Close()
		is.Equal(res.StatusCode, http.StatusAccepted) // pending, not unknown nor an error
		openRelease()
		is.Equal(strOf(recv(t, got).Result.GetOutput()), "x")
		o, err := server.FetchResult(ctx, nil, other.srv.URL(), other.srv.APIKey(), id, time.Second)
		is.NoErr(err)
		is.Equal(strOf(o.Result.GetOutput()), "x")
	})

	t.Run("cancel at a non-owner", func(t *testing.T) {
		is := is.New(t)
		id := bs[0].dispatch(t, call("sleeper", ""))[0]
		_, i := owner(bs, store.PartitionOf(id, testPartitions))
		other := bs[1-i]
		waitFor(t, "the sleeper suspended", func() bool { return bs[i].srv.Suspended() == 1 })
		res, err := other.srv.Cancel(ctx, id, "the test")
		is.NoErr(err)
		is.Equal(res.Calls, 1)
		o := result(t, other.srv, id)
		is.Equal(o.Status, sdkv1.Status_STATUS_PERMANENT_ERROR)
		is.True(strings.Contains(o.Result.GetError().GetMessage(), "cancelled by the test"))
		res, err = other.srv.Cancel(ctx, id, "")
		is.NoErr(err)
		is.Equal(res.Calls, 0) // final already
	})

	t.Run("health names the partitions", func(t *testing.T) {
		is := is.New(t)
		for _, b := range bs {
			is.NoErr(b.srv.Health())
			res, err := http.Get(b.srv.URL() + "/dispatch.local.v1/health")
			is.NoErr(err)
			data, _ := io.ReadAll(res.Body)
			res.Body.Close()
			is.Equal(res.StatusCode, http.StatusOK)
			var body struct {
				Status     string `json:"status"`
				Replica    string `json:"replica"`
				Partitions []int  `json:"partitions"`
			}
			is.NoErr(json.Unmarshal(data, &body))
			is.Equal(body.Status, "ok")
			is.Equal(body.Partitions, b.srv.Partitions())
			is.Equal(len(body.Partitions), testPartitions/2)
		}
	})
}

// writes counts the Applies of the stores it wraps that succeeded and
// failed.
type writes struct{ ok, failed atomic.Int64 }

type writeCounter struct {
	store.Store
	w *writes
}

func (c *writeCounter) Apply(ctx context.Context, batches ...*store.Batch) error {
	err := c.Store.Apply(ctx, batches...)
	if err != nil {
		c.w.failed.Add(1)
	} else {
		c.w.ok.Add(1)
	}
	return err
}

// A replica that stops renewing its leases but runs on (a process frozen,
// cut off from the database) loses its partitions to the other once they
// expire; when it resumes, its writes are refused (fenced) and its
// engines stop: it writes nothing after the takeover, the other replica
// runs the interrupted steps again, and every workflow completes once.
func TestReplicasFencedZombie(t *testing.T) {
	is := is.New(t)
	ep := newTestEndpoint(t, "")
	gate, openGate := opener()
	defer openGate()
	var blocked atomic.Int32
	ep.handle("step", func(req *sdkv1.RunRequest) (*sdkv1.RunResponse, error) {
		if strings.HasSuffix(strOf(req.GetInput()), ".1") {
			blocked.Add(1)
			<-gate
		}
		return echo(req)
	})
	ep.handle("chain", chain("step", 3))
	zw := &writes{}
	logs := []*syncBuffer{{}, {}}
	bs := startReplicas(t, 2, ep, logs, func(i int, c *server.Config) {
		if i == 0 {
			server.WithStore(c, func(st store.Store) store.Store { return &writeCounter{Store: st, w: zw} }, 0)
		}
	})
	zombie, other := bs[0], bs[1]
	const n = 60
	var calls []*sdkv1.Call
	for i := range n {
		calls = append(calls, call("chain", fmt.Sprintf("w%d", i)))
	}
	var ids []string
	for _, c := range calls { // round-robin over the zombie's partitions
		ids = append(ids, zombie.dispatch(t, c)...)
	}
	waitFor(t, "every workflow at its second step", func() bool { return blocked.Load() == n })
	zombie.srv.Pause(true)
	waitFor(t, "the other replica to own every partition", func() bool { return spread([]*bundle{other}, testPartitions) })
	before := zw.ok.Load()
	openGate() // the zombie's requests answer: it resumes its workflows

	for i, id := range ids {
		o := result(t, other.srv, id)
		is.Equal(strOf(o.Result.GetOutput()), fmt.Sprintf("w%d.0,w%d.1,w%d.2", i, i, i))
	}
	waitFor(t, "the zombie's engines stopped by the fence", func() bool { return zombie.srv.Health() != nil })
	is.True(errors.Is(zombie.srv.Health(), store.ErrFenced))
	is.Equal(zw.ok.Load(), before) // not one write after the takeover
	is.True(zw.failed.Load() > 0)  // though it tried
	for in, k := range runs(ep, "step") {
		switch {
		case strings.HasSuffix(in, ".1"):
			is.Equal(k, 2) // cut by the takeover, run again by the other
		case strings.HasSuffix(in, ".2"):
			// The zombie's resumes answered with the third step, which
			// it started early, before the fence refused the answer's
			// commit: at most one orphan run of it, then the other's.
			is.True(k == 1 || k == 2)
		default:
			is.Equal(k, 1) // the first step, durable before the pause
		}
	}
	is.True(strings.Contains(logs[1].String(), `"message":"acquired partition"`))
	_, err := zombie.send(call("chain", "late"))
	is.Equal(connect.CodeOf(err), connect.CodeUnavailable) // it takes nothing more
	is.True(strings.Contains(logs[0].String(), "was taken by another replica"))

	zombie.srv.Pause(false) // it wakes up: drops its fenced engines, takes its share again
	waitFor(t, "the partitions spread again", func() bool { return spread(bs, testPartitions) })
	is.NoErr(zombie.srv.Health())
	is.True(strings.Contains(logs[0].String(), `"message":"dropped partition"`))
	id := zombie.dispatch(t, call("chain", "again"))[0]
	is.Equal(strOf(result(t, other.srv, id).Result.GetOutput()), "again.0,again.1,again.2")
}

// Every replica is restarted in turn (a rolling deploy: graceful
// shutdown, which releases the leases, then a new process) while a client
// dispatches keyed workflows at all of them, retrying at another replica
// when one refuses: nothing is lost, no workflow starts twice, and every
// one completes with the right result.
func TestReplicasRollingRestart(t *testing.T) {
	is := is.New(t)
	ep := newTestEndpoint(t, "")
	ep.handle("step", echo)
	ep.handle("chain", chain("step", 3))
	url := pgtest.URL(t)
	cfgs := make([]server.Config, 3)
	cur := make([]*bundle, 3)
	for i := range cfgs {
		cfgs[i] = replicaConfig(t, url, i, ep, nil, nil)
		cur[i] = startServer(t, ep, cfgs[i])
	}
	waitFor(t, "the partitions spread", func() bool { return spread(cur, testPartitions) })
	var mu sync.Mutex
	get := func(i int) *bundle {
		mu.Lock()
		defer mu.Unlock()
		return cur[i%len(cur)]
	}
	const n = 400
	ids := make([]string, n)
	var sent atomic.Int32
	var retries atomic.Int32
	failed := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range n {
			key := fmt.Sprintf("wf-%d", i)
			deadline := time.Now().Add(30 * time.Second)
			for try := 0; ; try++ {
				b := get(i + try)
				got, _, err := keyed(context.Background(), b.srv, b.client, []string{key}, call("chain", fmt.Sprintf("w%d", i)))
				if err == nil {
					ids[i] = got[0]
					break
				}
				if time.Now().After(deadline) {
					failed <- fmt.Errorf("workflow %d: %w", i, err)
					return
				}
				retries.Add(1)
				time.Sleep(10 * time.Millisecond) // the client's back-off before it retries
			}
			sent.Add(1)
		}
	}()
	for k := range cur {
		waitFor(t, "more workflows sent", func() bool { return int(sent.Load()) >= (k+1)*n/4 })
		old := get(k)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		is.NoErr(old.srv.Shutdown(ctx))
		cancel()
		nb := startServer(t, ep, cfgs[k])
		mu.Lock()
		cur[k] = nb
		mu.Unlock()
		waitFor(t, "the partitions spread again", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return spread(cur, testPartitions)
		})
	}
	select {
	case <-done:
	case err := <-failed:
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for i, id := range ids {
		o, err := get(i).srv.Result(ctx, id)
		is.NoErr(err)
		is.Equal(strOf(o.Result.GetOutput()), fmt.Sprintf("w%d.0,w%d.1,w%d.2", i, i, i))
	}
	started := map[string]bool{}
	for _, r := range ep.requests("chain") {
		if r.GetInput() != nil {
			started[r.GetDispatchId()] = true
		}
	}
	is.Equal(len(started), n) // each workflow started once, whatever the retries
	again := 0
	for _, k := range runs(ep, "step") {
		again += k - 1
	}
	t.Logf("%d retried Dispatch requests; %d steps of %d ran again across the restarts", retries.Load(), again, 3*n)
}

// A replica that starts while a dead one still holds every lease owns
// nothing (its health route says so), a Dispatch waits for its first
// partition (and succeeds once the leases expire), and it answers
// unavailable, for the client to retry, when none comes within 5 s.
func TestReplicasNoPartitionYet(t *testing.T) {
	tests := []struct {
		name     string
		deadTTL  time.Duration // the dead replica's leases
		accepted bool
	}{
		{"the leases expire within the wait", 2500 * time.Millisecond, true},
		{"they outlast it", time.Minute, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			ep := newTestEndpoint(t, "")
			ep.handle("echo", echo)
			url := pgtest.URL(t)
			dead := startServer(t, ep, replicaConfig(t, url, 0, ep, nil, func(_ int, c *server.Config) {
				server.WithLeases(c, tt.deadTTL, testRenewEvery, testPartitions)
			}))
			is.Equal(len(dead.srv.Partitions()), testPartitions)
			is.NoErr(dead.srv.Crash())

			b := startServer(t, ep, replicaConfig(t, url, 1, ep, nil, nil))
			is.Equal(len(b.srv.Partitions()), 0)
			// Healthy as a spare: every partition has an owner whose
			// heartbeat is still live, as the dead one's is until it expires.
			is.NoErr(b.srv.Health())
			res, err := http.Get(b.srv.URL() + "/dispatch.local.v1/health")
			is.NoErr(err)
			data, _ := io.ReadAll(res.Body)
			res.Body.Close()
			is.True(strings.Contains(string(data), `"partitions":[]`))

			ids, err := b.send(call("echo", "x"))
			if !tt.accepted {
				is.Equal(connect.CodeOf(err), connect.CodeUnavailable)
				is.True(strings.Contains(err.Error(), "owns no partition of the database yet"))
				is.True(strings.Contains(err.Error(), "retry the request"))
				return
			}
			is.NoErr(err) // it waited for its first lease
			is.Equal(strOf(result(t, b.srv, ids[0]).Result.GetOutput()), "x")
			is.NoErr(b.srv.Health())
		})
	}
}

// A request forwarded to a replica that does not own the key's partition
// (the views of the leases disagree while a partition moves) is not
// forwarded again: it is answered unavailable, for the client to retry.
func TestReplicasForwardedOnce(t *testing.T) {
	is := is.New(t)
	ep := newTestEndpoint(t, "")
	ep.handle("echo", echo)
	bs := startReplicas(t, 2, ep, nil, nil)
	const key = "k-forwarded"
	_, i := owner(bs, store.PartitionOf(key, testPartitions))
	other := bs[1-i]
	req := connect.NewRequest(&sdkv1.DispatchRequest{Calls: []*sdkv1.Call{call("echo", "x")}})
	req.Header().Set("Authorization", "Bearer "+other.srv.APIKey())
	req.Header().Set("Idempotency-Key", key)
	req.Header().Set("Dispatch-Forwarded", "r9")
	_, err := other.client.Dispatch(context.Background(), req)
	is.Equal(connect.CodeOf(err), connect.CodeUnavailable)
	is.True(strings.Contains(err.Error(), "does not own it"))
	is.Equal(storedCalls(t, other.srv), 0) // nothing recorded
}

// heldEndpoint is a test endpoint whose function "held" echoes once the
// gate opens (openGate, idempotent), counting the most requests it held
// at once in peak.
func heldEndpoint(t *testing.T) (ep *testEndpoint, peak *atomic.Int32, openGate func()) {
	t.Helper()
	ep = newTestEndpoint(t, "")
	gate, openGate := opener()
	var inflight atomic.Int32
	peak = new(atomic.Int32)
	ep.handle("held", func(req *sdkv1.RunRequest) (*sdkv1.RunResponse, error) {
		n := inflight.Add(1)
		defer inflight.Add(-1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		<-gate
		return echo(req)
	})
	return ep, peak, openGate
}

// A replica that runs every partition sends an endpoint no more than
// Config.MaxConcurrency requests at once, whatever the partitions of the
// calls: its partitions' engines share one limit per endpoint.
func TestReplicasSharedEndpointLimit(t *testing.T) {
	is := is.New(t)
	ep, peak, openGate := heldEndpoint(t)
	defer openGate()
	const limit = 4
	bs := startReplicas(t, 1, ep, nil, func(_ int, c *server.Config) {
		c.InitialConcurrency, c.MaxConcurrency = limit, limit
	})
	var ids []string
	for i := range 60 { // one request each, round-robin over the 12 partitions
		ids = append(ids, bs[0].dispatch(t, call("held", fmt.Sprint(i)))...)
	}
	parts := map[int]bool{}
	for _, id := range ids {
		parts[store.PartitionOf(id, testPartitions)] = true
	}
	is.Equal(len(parts), testPartitions)
	waitFor(t, "the limit in flight", func() bool { return peak.Load() >= limit })
	is.Equal(peak.Load(), int32(limit)) // not limit per partition
	openGate()
	for i, id := range ids {
		is.Equal(strOf(result(t, bs[0].srv, id).Result.GetOutput()), fmt.Sprint(i))
	}
	is.True(peak.Load() <= limit)
}
