package server

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"buf.build/gen/go/stealthrocket/dispatch-proto/connectrpc/go/dispatch/sdk/v1/sdkv1connect"
	sdkv1 "buf.build/gen/go/stealthrocket/dispatch-proto/protocolbuffers/go/dispatch/sdk/v1"
	"connectrpc.com/connect"

	"github.com/dispatchkit/dispatch/internal/callresult"
	"github.com/dispatchkit/dispatch/internal/localapi"
	"github.com/dispatchkit/dispatch/internal/scheduler"
	"github.com/dispatchkit/dispatch/internal/store"
	"github.com/dispatchkit/dispatch/internal/store/pgstore"
)

// The replicas of a PostgreSQL database. A server with Config.Postgres is
// one of any number of replicas sharing the database. The calls are split
// into the database's partitions (store.PartitionOf of a call's root id);
// a replica runs the partitions it holds a lease on, one scheduler.Engine
// each, on the partition's fenced store. A manager (two goroutines, so
// that a long recovery never delays a renewal) keeps the leases and the
// share:
//
//   - every renewEvery (a fifth of the lease time) it heartbeats (its row in table replicas, with its
//     advertised URL) and renews each lease; a lease found taken (fenced),
//     or not renewed before it expired, or whose engine's store broke,
//     loses its engine at once;
//   - every renewEvery it also rebalances: its share is ceil(partitions /
//     live replicas); under it, it acquires free partitions (at most
//     movesPerTick a round, the first round at Start excepted, so that
//     replicas starting together spread), recovering each before it takes
//     requests; over it, it gives back its extra partitions (closes their
//     engines, then releases their leases, so that the next owner
//     recovers them at once).
//
// Requests go where their partition is: see Dispatch, result and cancel
// below, and "Several replicas" in the package documentation.

const (
	// defaultLeaseTTL is how long a lease holds without renewal: a dead
	// replica's partitions wait that long for a new owner.
	defaultLeaseTTL = 10 * time.Second
	// minLeaseTTL is the shortest Config.LeaseTTL: below it, renewals
	// (renewsPerTTL per lease time) cost more than a faster failover is
	// worth, and a pause of the process loses the leases.
	minLeaseTTL = time.Second
	// renewsPerTTL is how often the manager runs per lease time: five
	// renewals, so that a renewal or two may fail without a loss.
	renewsPerTTL = 5
	// movesPerTick bounds the partitions acquired, and given back, in one
	// round of the manager.
	movesPerTick = 4
	// firstLeaseWait bounds how long a Dispatch without a key waits for
	// this replica to own a partition.
	firstLeaseWait = 5 * time.Second
	// releaseTimeout bounds the release of the leases and the leave at
	// shutdown.
	releaseTimeout = 5 * time.Second
	// minResultPoll and maxResultPoll bound the period at which a wait
	// for a call that runs on another replica reads its row.
	minResultPoll = 10 * time.Millisecond
	maxResultPoll = 250 * time.Millisecond
)

// headerForwarded marks a request forwarded by a replica to the owner of
// its partition, with the forwarder's name: the owner never forwards it
// again (it answers unavailable if it no longer owns the partition), so
// that two replicas with stale views of the leases cannot bounce it.
const headerForwarded = "Dispatch-Forwarded"

// errRetry is wrapped by the errors of a replica that cannot take a
// request now (the partition moves, or has no owner yet): the client
// retries, as for any unavailable answer.
var errRetry = errors.New("retry the request")

// cluster is the replica side of a server on PostgreSQL.
type cluster struct {
	s          *Server
	db         *pgstore.Cluster
	n          int    // partitions
	name       string // this replica's
	ttl, every time.Duration
	url        string // advertised, set by start
	fwd        *http.Client
	fwdTr      *http.Transport

	ctx     context.Context // ends when the cluster closes
	stopCtx context.CancelFunc
	stop    chan struct{}
	stopped sync.Once
	wg      sync.WaitGroup
	crashed atomic.Bool // test hook: close without releasing
	paused  atomic.Bool // test hook: the manager does nothing
	rr      atomic.Uint32
	// limits are the endpoints' concurrency limits, shared by the engines
	// of every partition this replica runs, so that Config.MaxConcurrency
	// bounds what the replica sends an endpoint, not each partition; their
	// share is the live replicas (liveReplicas), so that it bounds what
	// the cluster sends, not each replica.
	limits *scheduler.Limits

	mu      sync.Mutex
	started bool
	parts   map[int]*part // held leases, started or starting
	live    []*part       // started, by partition
	changed chan struct{} // closed and replaced when live changes
	view    leaseView
}

// part is one partition this replica holds a lease on.
type part struct {
	p     int
	lease pgstore.Lease
	until time.Time         // the lease surely holds until then (this clock)
	eng   *scheduler.Engine // nil while it starts
	gone  bool              // dropped while starting: close the engine once started
}

// leaseView is the last reading of the leases and the live replicas.
type leaseView struct {
	leases   []pgstore.LeaseInfo
	replicas []pgstore.ReplicaInfo
}

// openCluster opens the database of cfg.Postgres as a replica.
func openCluster(ctx context.Context, cfg *Config) (*cluster, error) {
	db, err := pgstore.OpenCluster(ctx, cfg.Postgres, pgstore.ClusterOptions{Partitions: cfg.partitions, Replica: cfg.Replica})
	var locked *pgstore.LockedError
	switch {
	case errors.As(err, &locked):
		return nil, fmt.Errorf("server: %s: stop it, or give the replicas another database "+
			"(--postgres of dispatch serve or dispatch test, Config.Postgres in Go)", strings.TrimPrefix(locked.Error(), "pgstore: "))
	case err != nil:
		return nil, fmt.Errorf("server: opening the store of Config.Postgres: %w", err)
	}
	c := &cluster{
		db:      db,
		n:       db.Partitions(),
		name:    db.Replica(),
		ttl:     cmp.Or(cfg.leaseTTL, cfg.LeaseTTL, defaultLeaseTTL),
		stop:    make(chan struct{}),
		parts:   make(map[int]*part),
		changed: make(chan struct{}),
		limits:  scheduler.NewLimits(),
	}
	c.every = cmp.Or(cfg.renewEvery, c.ttl/renewsPerTTL)
	c.ctx, c.stopCtx = context.WithCancel(context.Background())
	c.fwdTr = http.DefaultTransport.(*http.Transport).Clone()
	c.fwd = &http.Client{Transport: &forwardTransport{base: c.fwdTr, name: c.name}}
	return c, nil
}

// forwardTransport marks the requests it sends as forwarded.
type forwardTransport struct {
	base http.RoundTripper
	name string
}

func (t *forwardTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set(headerForwarded, t.name)
	return t.base.RoundTrip(r)
}

// advertised is the URL other replicas reach this one at: Config.Advertise,
// else http://HOST:PORT of the listener, HOST being the machine's name when
// the listener's host is unspecified.
func advertised(cfgURL string, addr net.Addr) string {
	if cfgURL != "" {
		return strings.TrimSuffix(cfgURL, "/")
	}
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return "http://" + addr.String()
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
		if h, err := os.Hostname(); err == nil && h != "" {
			host = h
		}
	}
	return "http://" + net.JoinHostPort(host, port)
}

// start registers the replica, takes its share of the free partitions
// (recovering each) and starts the manager.
func (c *cluster) start(ctx context.Context, addr net.Addr) error {
	c.url = advertised(c.s.cfg.Advertise, addr)
	if err := c.db.Heartbeat(ctx, c.url, c.ttl); err != nil {
		return fmt.Errorf("server: registering this replica in the database of Config.Postgres: %w", err)
	}
	// Renewals first: the first round may recover partitions for longer
	// than a lease lasts.
	c.wg.Add(1)
	go c.loop(c.renew)
	if err := c.balance(ctx, c.n); err != nil {
		return fmt.Errorf("server: taking partitions of the database of Config.Postgres: %w", err)
	}
	c.mu.Lock()
	c.started = true
	c.mu.Unlock()
	c.wg.Add(1)
	go c.loop(func() {
		ctx, cancel := context.WithTimeout(c.ctx, max(c.ttl, openTimeout))
		defer cancel()
		if err := c.balance(ctx, movesPerTick); err != nil && c.ctx.Err() == nil {
			c.s.cfg.Logger.Warn().Err(err).Msg("rebalancing partitions failed; trying again")
		}
	})
	c.s.cfg.Logger.Info().Str("replica", c.name).Str("url", c.url).Ints("partitions", c.partitions()).
		Int("of", c.n).Msg("replica started")
	return nil
}

// loop runs fn every c.every until the cluster stops.
func (c *cluster) loop(fn func()) {
	defer c.wg.Done()
	t := time.NewTicker(c.every)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
			if !c.paused.Load() {
				fn()
			}
		}
	}
}

// renew heartbeats and renews every lease, all at once: a renewal waits
// for the transaction of its partition in flight (the fence holds the
// partition's row), and one slow partition must not make the others late.
// It drops the partitions whose lease is lost or whose engine's store
// broke.
func (c *cluster) renew() {
	c.mu.Lock()
	parts := slices.Collect(maps.Values(c.parts))
	c.mu.Unlock()
	var wg sync.WaitGroup
	wg.Go(func() {
		ctx, cancel := context.WithTimeout(c.ctx, c.ttl)
		defer cancel()
		if err := c.db.Heartbeat(ctx, c.url, c.ttl); err != nil && c.ctx.Err() == nil {
			c.s.cfg.Logger.Warn().Err(err).Msg("heartbeat of this replica failed; trying again")
		}
	})
	for _, pt := range parts {
		wg.Go(func() { c.renewOne(pt) })
	}
	wg.Wait()
}

// renewOne renews the lease of pt, or drops pt.
func (c *cluster) renewOne(pt *part) {
	c.mu.Lock()
	eng, until := pt.eng, pt.until
	c.mu.Unlock()
	if eng != nil {
		if err := eng.Err(); err != nil {
			// Fenced, or the database failed past the retries: what was
			// durable resumes at the next owner (maybe this one).
			c.drop(pt, true, fmt.Errorf("its store cannot write: %w", err))
			return
		}
	}
	ctx, cancel := context.WithTimeout(c.ctx, c.ttl)
	defer cancel()
	sent := time.Now()
	err := c.db.Renew(ctx, pt.lease, c.ttl)
	switch {
	case err == nil:
		c.mu.Lock()
		pt.until = sent.Add(c.ttl)
		c.mu.Unlock()
	case c.ctx.Err() != nil: // closing
	case errors.Is(err, store.ErrFenced):
		c.drop(pt, false, err)
	case !time.Now().Before(until):
		c.drop(pt, false, fmt.Errorf("its lease expired: renewing it failed: %w", err))
	default:
		c.s.cfg.Logger.Warn().Err(err).Int("partition", pt.p).Msg("renewing the lease of a partition failed; trying again")
	}
}

// balance reads the leases and the live replicas, gives back the
// partitions over this replica's share and acquires free ones under it,
// at most limit of each.
func (c *cluster) balance(ctx context.Context, limit int) error {
	v, err := c.readView(ctx)
	if err != nil {
		return err
	}
	live := c.liveReplicas(v)
	target := (c.n + live - 1) / live
	c.mu.Lock()
	owned := len(c.parts)
	var extra []*part
	if owned > target {
		for i := len(c.live) - 1; i >= 0 && len(extra) < min(owned-target, limit); i-- {
			extra = append(extra, c.live[i])
		}
	}
	c.mu.Unlock()
	for _, pt := range extra {
		c.giveBack(pt)
	}
	want := min(target-owned, limit)
	if want <= 0 {
		return nil
	}
	held := make(map[int]bool, len(v.leases))
	for _, l := range v.leases {
		held[l.Partition] = l.Held
	}
	// Replicas start their search at different partitions, so that those
	// starting together seldom race for the same lease.
	h := fnv.New32a()
	h.Write([]byte(c.name))
	from := int(h.Sum32() % uint32(c.n))
	for i := 0; i < c.n && want > 0; i++ {
		p := (from+i)%c.n + 1
		if held[p] || c.has(p) {
			continue
		}
		select {
		case <-c.stop:
			return nil
		default:
		}
		took, err := c.take(ctx, p)
		if err != nil {
			return err
		}
		if took {
			want--
		}
	}
	return nil
}

// readView reads the leases and the live replicas, and keeps them for
// routing and health.
func (c *cluster) readView(ctx context.Context) (leaseView, error) {
	leases, err := c.db.Leases(ctx)
	if err != nil {
		return leaseView{}, err
	}
	replicas, err := c.db.Replicas(ctx)
	if err != nil {
		return leaseView{}, err
	}
	v := leaseView{leases: leases, replicas: replicas}
	c.mu.Lock()
	c.view = v
	c.mu.Unlock()
	c.limits.SetShare(c.liveReplicas(v))
	return v, nil
}

// liveReplicas returns the number of live replicas in v, this one counted
// even if its heartbeat failed (it runs its partitions all the same).
//
// It is the share of the endpoint limits (scheduler.Limits.SetShare):
// each replica sends an endpoint at most ceil(Config.MaxConcurrency / R),
// so that the cluster's requests in flight are bounded by the limit the
// user set, not R times it. The view is read at start (before the first
// engine is made), at every rebalance and when routing needs it: a
// replica that dies leaves the others' shares low until its heartbeat
// expires and their next round (a lease time at most), a safe error.
func (c *cluster) liveReplicas(v leaseView) int {
	live := len(v.replicas)
	if !slices.ContainsFunc(v.replicas, func(r pgstore.ReplicaInfo) bool { return r.Name == c.name }) {
		live++ // its heartbeat failed: it counts all the same
	}
	return live
}

// has reports whether this replica holds partition p.
func (c *cluster) has(p int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.parts[p] != nil
}

// take acquires partition p and starts its engine, which recovers the
// partition's calls; it reports whether it did. Only a failure of the
// database is an error: a lease taken meanwhile, or an engine that could
// not start (logged, the lease released), is not.
func (c *cluster) take(ctx context.Context, p int) (bool, error) {
	sent := time.Now()
	l, err := c.db.Acquire(ctx, p, c.ttl)
	if errors.Is(err, pgstore.ErrLeaseHeld) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("acquiring partition %d: %w", p, err)
	}
	pt := &part{p: p, lease: l, until: sent.Add(c.ttl)}
	c.mu.Lock()
	c.parts[p] = pt
	c.mu.Unlock()
	log := c.s.cfg.Logger
	eng, err := c.newEngine(l)
	if err == nil {
		if err = eng.Start(c.ctx); err != nil {
			eng.Close()
		}
	}
	if err != nil {
		if c.ctx.Err() == nil {
			log.Error().Err(err).Int("partition", p).Int64("epoch", l.Epoch).Msg("starting the engine of a partition failed; releasing it")
		}
		c.mu.Lock()
		if c.parts[p] == pt {
			delete(c.parts, p)
		}
		c.mu.Unlock()
		c.release(l)
		return false, nil
	}
	c.mu.Lock()
	if pt.gone { // its lease was lost while it started
		c.mu.Unlock()
		eng.Close()
		return false, nil
	}
	pt.eng = eng
	c.rebuild()
	c.mu.Unlock()
	log.Info().Int("partition", p).Int64("epoch", l.Epoch).Str("replica", c.name).Msg("acquired partition")
	return true, nil
}

// newEngine makes the engine of the partition of lease l.
func (c *cluster) newEngine(l pgstore.Lease) (*scheduler.Engine, error) {
	st := c.db.Store(l)
	if w := c.s.cfg.wrapStore; w != nil {
		st = w(st)
	}
	cfg := c.s.engineConfig(st)
	cfg.Partitions, cfg.Partition = c.n, l.Partition
	cfg.Limits = c.limits
	cfg.Logger = cfg.Logger.With().Int("partition", l.Partition).Logger()
	return scheduler.New(cfg)
}

// giveBack closes the engine of pt, then releases its lease, for another
// replica to take: a rebalance.
func (c *cluster) giveBack(pt *part) {
	eng, ok := c.forget(pt)
	if !ok {
		return
	}
	if eng != nil {
		eng.Close()
	}
	c.release(pt.lease)
	c.s.cfg.Logger.Info().Int("partition", pt.p).Int64("epoch", pt.lease.Epoch).Str("replica", c.name).Msg("gave back partition")
}

// drop closes the engine of a partition whose lease is lost or whose
// store broke; release releases its lease too (a store that broke on a
// lease still held).
func (c *cluster) drop(pt *part, release bool, why error) {
	eng, ok := c.forget(pt)
	if !ok {
		return
	}
	c.s.cfg.Logger.Warn().Err(why).Int("partition", pt.p).Int64("epoch", pt.lease.Epoch).Str("replica", c.name).Msg("dropped partition")
	if eng != nil {
		eng.Close()
	}
	if release {
		c.release(pt.lease)
	}
}

// forget removes pt from the partitions held and returns its engine (nil
// if it is still starting: take closes it then); ok is false if pt was
// forgotten before. Requests no longer reach it once forget returns.
func (c *cluster) forget(pt *part) (eng *scheduler.Engine, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.parts[pt.p] != pt {
		return nil, false
	}
	delete(c.parts, pt.p)
	pt.gone = true
	c.rebuild()
	return pt.eng, true
}

// release releases lease l, logging a failure (the lease then expires).
func (c *cluster) release(l pgstore.Lease) {
	ctx, cancel := context.WithTimeout(context.Background(), releaseTimeout)
	defer cancel()
	if err := c.db.Release(ctx, l); err != nil {
		c.s.cfg.Logger.Warn().Err(err).Int("partition", l.Partition).Msg("releasing a partition failed: another replica takes it when its lease expires")
	}
}

// rebuild remakes the list of started partitions and wakes the requests
// waiting for one. Called with c.mu held.
func (c *cluster) rebuild() {
	c.live = c.live[:0:0]
	for _, pt := range c.parts {
		if pt.eng != nil {
			c.live = append(c.live, pt)
		}
	}
	slices.SortFunc(c.live, func(a, b *part) int { return a.p - b.p })
	close(c.changed)
	c.changed = make(chan struct{})
}

// engines returns the engines of the started partitions.
func (c *cluster) engines() []*scheduler.Engine {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]*scheduler.Engine, len(c.live))
	for i, pt := range c.live {
		out[i] = pt.eng
	}
	return out
}

// anyEngine returns the engine of one started partition, or nil: the
// validation of Dispatch requests uses its cache of endpoints accepted
// (they share the replica's policy).
func (c *cluster) anyEngine() *scheduler.Engine {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.live) == 0 {
		return nil
	}
	return c.live[0].eng
}

// partitions returns the started partitions, in order.
func (c *cluster) partitions() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]int, len(c.live))
	for i, pt := range c.live {
		out[i] = pt.p
	}
	return out
}

// engineOf returns the engine of partition p if it runs here.
func (c *cluster) engineOf(p int) *scheduler.Engine {
	c.mu.Lock()
	defer c.mu.Unlock()
	if pt := c.parts[p]; pt != nil {
		return pt.eng
	}
	return nil
}

// next returns the next engine for a Dispatch without a key, round-robin
// over the started partitions, waiting up to firstLeaseWait for one.
func (c *cluster) next(ctx context.Context) (*scheduler.Engine, error) {
	var timeout <-chan time.Time
	for {
		c.mu.Lock()
		if len(c.live) > 0 {
			eng := c.live[int(c.rr.Add(1))%len(c.live)].eng
			c.mu.Unlock()
			return eng, nil
		}
		changed := c.changed
		c.mu.Unlock()
		if timeout == nil {
			t := time.NewTimer(firstLeaseWait)
			defer t.Stop()
			timeout = t.C
		}
		select {
		case <-changed:
		case <-timeout:
			return nil, connect.NewError(connect.CodeUnavailable, fmt.Errorf(
				"server: replica %s owns no partition of the database yet (it takes its share as leases come free, within %v of a replica's death): no call was recorded; %w",
				c.name, c.ttl, errRetry))
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-c.stop:
			return nil, scheduler.ErrClosed
		}
	}
}

// moving is the answer to a request whose partition's engine closed or
// broke under it: the partition moves to another replica.
func (c *cluster) moving(p int, err error) error {
	return connect.NewError(connect.CodeUnavailable, fmt.Errorf(
		"server: partition %d is moving to another replica (%v): no call was recorded; %w", p, err, errRetry))
}

// engineGone reports whether err says that an engine closed or its store
// broke under a request (dispatch, cancel): it had no effect, and the
// partition moves to another replica.
func engineGone(err error) bool {
	return errors.Is(err, scheduler.ErrClosed) || errors.As(err, new(*scheduler.StoreError))
}

// dispatch records the calls of msg: without a key, in a partition this
// replica owns; with one, in the key's partition, here or forwarded to its
// owner. Its errors are the engine's, or *connect.Error answers.
func (c *cluster) dispatch(ctx context.Context, h http.Header, msg *sdkv1.DispatchRequest, key string, keyed bool) ([]string, bool, error) {
	if keyed {
		p := store.PartitionOf(key, c.n)
		if eng := c.engineOf(p); eng != nil {
			ids, replayed, err := eng.DispatchKey(ctx, key, msg.GetCalls())
			if engineGone(err) {
				return nil, false, c.moving(p, err)
			}
			return ids, replayed, err
		}
		if h.Get(headerForwarded) != "" {
			return nil, false, connect.NewError(connect.CodeUnavailable, fmt.Errorf(
				"server: replica %s was forwarded this request as the owner of partition %d, its idempotency key's, and does not own it (any more): no call was recorded; %w",
				c.name, p, errRetry))
		}
		return c.forwardDispatch(ctx, h, msg, p)
	}
	for tries := 0; ; tries++ {
		eng, err := c.next(ctx)
		if err != nil {
			return nil, false, err
		}
		ids, err := eng.Dispatch(ctx, msg.GetCalls())
		if engineGone(err) && tries < c.n {
			select {
			case <-c.stop:
				return nil, false, err
			default:
			}
			continue // nothing was recorded: another partition takes them
		}
		return ids, false, err
	}
}

// forwardDispatch sends the keyed request msg to the owner of partition
// p, with its key and credentials, and returns the owner's answer.
func (c *cluster) forwardDispatch(ctx context.Context, h http.Header, msg *sdkv1.DispatchRequest, p int) ([]string, bool, error) {
	owner, url, ok := c.owner(ctx, p)
	if !ok {
		return nil, false, connect.NewError(connect.CodeUnavailable, fmt.Errorf(
			"server: partition %d, the idempotency key's, has no live owner now (a replica is taking it over): no call was recorded; %w", p, errRetry))
	}
	client := sdkv1connect.NewDispatchServiceClient(c.fwd, url)
	req := connect.NewRequest(msg)
	for _, name := range []string{"Authorization", localapi.HeaderKey} {
		for _, v := range h.Values(name) {
			req.Header().Add(name, v)
		}
	}
	res, err := client.Dispatch(ctx, req)
	if err != nil {
		var ce *connect.Error
		if errors.As(err, &ce) && ce.Code() != connect.CodeUnavailable && ce.Code() != connect.CodeUnknown {
			return nil, false, ce // the owner's answer
		}
		return nil, false, connect.NewError(connect.CodeUnavailable, fmt.Errorf(
			"server: forwarding the request to replica %s at %s, the owner of partition %d (its idempotency key's), failed: %v; %w", owner, url, p, err, errRetry))
	}
	return res.Msg.GetDispatchIds(), res.Header().Get(localapi.HeaderReplayed) == "true", nil
}

// owner returns the name and URL of the live owner of partition p, other
// than this replica, from the last view, or from a new one when the last
// has none.
func (c *cluster) owner(ctx context.Context, p int) (name, url string, ok bool) {
	find := func(v leaseView) (string, string, bool) {
		for _, l := range v.leases {
			if l.Partition != p || !l.Held || l.Owner == c.name {
				continue
			}
			for _, r := range v.replicas {
				if r.Name == l.Owner {
					return r.Name, r.URL, true
				}
			}
		}
		return "", "", false
	}
	c.mu.Lock()
	v := c.view
	c.mu.Unlock()
	if name, url, ok := find(v); ok {
		return name, url, true
	}
	v, err := c.readView(ctx)
	if err != nil {
		return "", "", false
	}
	return find(v)
}

// watch returns a watch of call id from the engine that runs it here, if
// one does: the engine of the partition id names first (every id's, but
// the children's made by older builds, which the other engines find).
func (c *cluster) watch(id string) *scheduler.Watch {
	c.mu.Lock()
	live := slices.Clone(c.live)
	c.mu.Unlock()
	first := store.PartitionOf(id, c.n)
	if i := slices.IndexFunc(live, func(pt *part) bool { return pt.p == first }); i > 0 {
		live[0], live[i] = live[i], live[0]
	}
	for _, pt := range live {
		if w, err := pt.eng.Watch(id); err == nil && w != nil {
			return w
		}
	}
	return nil
}

// result is Server.result on a replica: the engine that runs the call
// here wakes the wait; otherwise the call's row is read, and read again
// with back-off (10 ms doubling to 250 ms) until it is final. A call runs
// on one replica at a time, and may move (failover, rebalance), so every
// read looks for an engine here again first.
//
// A call without a row that no engine here runs may be a child started
// early at the owner of its partition, whose creating commit is not
// durable yet: the request is forwarded to that owner (forwardResult),
// unless it was forwarded here (forwarded: this replica answers from what
// it runs and stores, and never forwards again). A forwarded wait that
// ends pending (the owner's wait is at most callresult.MaxWait) goes on
// here: by then the row is stored, or the owner is asked again.
func (c *cluster) result(ctx context.Context, id string, wait, forwarded bool) (*Outcome, error) {
	delay := time.Duration(0)
	for {
		if w := c.watch(id); w != nil {
			if !wait {
				w.Stop()
				return nil, errPending
			}
			err := await(ctx, c.s.stopping, w.Done())
			w.Stop()
			if err != nil {
				return nil, err
			}
			if row, err := w.Outcome(); err == nil {
				return outcomeOf(row)
			}
			// The engine broke (its partition moves): the next owner
			// finishes the call; read its row.
		}
		rctx := ctx
		if delay == 0 {
			rctx = context.WithoutCancel(ctx) // as Server.stored: a final outcome is answered
		}
		row, err := c.s.store.GetCall(rctx, id)
		switch {
		case errors.Is(err, store.ErrNotFound) && forwarded:
			return nil, callresult.UnknownCall(id)
		case errors.Is(err, store.ErrNotFound):
			o, pending, err := c.forwardResult(ctx, id, wait)
			switch {
			case err != nil || !pending:
				return o, err
			case !wait:
				return nil, errPending
			}
		case err != nil && ctx.Err() != nil:
			return nil, ctx.Err()
		case err != nil:
			return nil, fmt.Errorf("server: reading call %q: %w", id, err)
		case row.State == store.Done:
			return outcomeOf(row)
		case !wait:
			return nil, errPending
		}
		delay = min(max(2*delay, minResultPoll), maxResultPoll)
		t := time.NewTimer(delay)
		err = await(ctx, c.s.stopping, t.C)
		t.Stop()
		if err != nil {
			return nil, err
		}
	}
}

// forwardResult asks the owner of the partition of id (store.PartitionOf
// of the id itself: every call's id is of its tree's partition) for the
// outcome of call id, which has no row and runs on no engine here: one
// request, waiting, when wait is set, as long as ctx allows (at most
// callresult.MaxWait). It answers unknown without a request when this
// replica owns that partition (its engine would have known the call) or
// when the partition has no live owner (no engine runs the call). An id
// made by an older build, whose child ids were drawn in no partition,
// names a partition that is not its tree's: its owner answers unknown, as
// the non-owners did before.
func (c *cluster) forwardResult(ctx context.Context, id string, wait bool) (*Outcome, bool, error) {
	p := store.PartitionOf(id, c.n)
	if c.has(p) {
		return nil, false, callresult.UnknownCall(id)
	}
	owner, url, ok := c.owner(ctx, p)
	if !ok {
		return nil, false, callresult.UnknownCall(id)
	}
	var d time.Duration
	if wait {
		d = callresult.MaxWait
		if dl, ok := ctx.Deadline(); ok {
			d = min(d, time.Until(dl))
		}
		if d <= 0 {
			return nil, false, ctx.Err()
		}
	}
	o, pending, err := callresult.FetchOnce(ctx, c.fwd, url, c.s.cfg.APIKey, id, d)
	switch {
	case err == nil:
		return (*Outcome)(o), pending, nil
	case errors.Is(err, callresult.ErrUnknownCall):
		return nil, false, callresult.UnknownCall(id)
	case ctx.Err() != nil:
		return nil, false, ctx.Err()
	}
	return nil, false, fmt.Errorf("server: forwarding the result of call %q to replica %s at %s, the owner of its partition %d, failed: %v; %w", id, owner, url, p, err, errRetry)
}

// cancel is Server.cancel on a replica: the engine of the call's
// partition cancels it, here or at the owner, to which it is forwarded.
func (c *cluster) cancel(ctx context.Context, id, reason string, forwarded bool) (int, error) {
	row, err := c.s.store.GetCall(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return c.cancelUnstored(ctx, id, reason, forwarded)
	case err != nil:
		return 0, fmt.Errorf("reading call %q: %w", id, err)
	case row.State == store.Done:
		return 0, nil
	}
	p := store.PartitionOf(row.RootID, c.n)
	if eng := c.engineOf(p); eng != nil {
		n, err := eng.Cancel(ctx, id, reason)
		if engineGone(err) {
			return 0, fmt.Errorf("server: partition %d of call %q is moving to another replica (%v): nothing was cancelled; %w", p, id, err, errRetry)
		}
		return n, err
	}
	if forwarded {
		return 0, fmt.Errorf("server: replica %s was forwarded the cancel of call %q as the owner of its partition %d, and does not own it (any more): nothing was cancelled; %w", c.name, id, p, errRetry)
	}
	owner, url, ok := c.owner(ctx, p)
	if !ok {
		return 0, fmt.Errorf("server: partition %d of call %q has no live owner now (a replica is taking it over): nothing was cancelled; %w", p, id, errRetry)
	}
	return c.forwardCancel(ctx, id, reason, p, owner, url)
}

// forwardCancel forwards the cancel of call id, of partition p, to the
// partition's owner, replica owner at url, and returns its answer.
func (c *cluster) forwardCancel(ctx context.Context, id, reason string, p int, owner, url string) (int, error) {
	res, err := localapi.Cancel(ctx, c.fwd, url, c.s.cfg.APIKey, id, reason)
	switch {
	case errors.Is(err, callresult.ErrUnknownCall):
		return 0, scheduler.ErrUnknownCall
	case err != nil && ctx.Err() != nil:
		return 0, ctx.Err()
	case err != nil:
		return 0, fmt.Errorf("server: forwarding the cancel of call %q to replica %s at %s, the owner of its partition %d, failed: %v; %w", id, owner, url, p, err, errRetry)
	}
	return res.Calls, nil
}

// cancelUnstored cancels call id, which the store does not know: a child
// started early, whose creating commit is not durable yet (see "Early
// start" in the scheduler's documentation), is known only to the engine
// that started it, as a server on its own store knows it. Its id is of
// its tree's partition (store.PartitionOf of the id), whose engine here
// is asked first; then the other engines here, for the children of older
// builds, whose ids were drawn in no partition; then, unless the cancel
// was forwarded here, the partition's owner if it is another replica
// (forwarded once). An older build's child that runs on another replica
// is thus still unknown here, as its Result is, until its row is stored.
func (c *cluster) cancelUnstored(ctx context.Context, id, reason string, forwarded bool) (int, error) {
	p := store.PartitionOf(id, c.n)
	c.mu.Lock()
	live := slices.Clone(c.live)
	c.mu.Unlock()
	if i := slices.IndexFunc(live, func(pt *part) bool { return pt.p == p }); i > 0 {
		live[0], live[i] = live[i], live[0]
	}
	for _, pt := range live {
		n, err := pt.eng.Cancel(ctx, id, reason)
		switch {
		case errors.Is(err, scheduler.ErrUnknownCall), engineGone(err):
			continue // not this engine's, or it stopped: its calls are not stored here
		}
		return n, err
	}
	if forwarded || c.has(p) {
		return 0, scheduler.ErrUnknownCall
	}
	owner, url, ok := c.owner(ctx, p)
	if !ok {
		return 0, scheduler.ErrUnknownCall // no engine runs it: a call without a row and an owner is none
	}
	return c.forwardCancel(ctx, id, reason, p, owner, url)
}

// health is Server.Health on a replica.
func (c *cluster) health() error {
	c.mu.Lock()
	started, live, v := c.started, slices.Clone(c.live), c.view
	c.mu.Unlock()
	select {
	case <-c.stop:
		started = false
	default:
	}
	if !started {
		return errors.New("server: not running: not started yet, or stopping")
	}
	var broken error
	for _, pt := range live {
		err := pt.eng.Err()
		if err == nil {
			return nil
		}
		broken = err
	}
	if broken != nil {
		return fmt.Errorf("server: the partitions of replica %s cannot write (%w); they move to other replicas, or come back here once the database works", c.name, broken)
	}
	others := 0
	for _, l := range v.leases {
		if l.Held && l.Owner != c.name {
			others++
		}
	}
	if len(v.leases) > 0 && others == len(v.leases) {
		return nil // a spare: the other replicas own every partition
	}
	return fmt.Errorf("server: replica %s owns no partition yet, and %d of the %d have no owner: it takes its share as leases come free, within %v of a replica's death", c.name, c.n-others, c.n, c.ttl)
}

// close stops the manager and the engines, releases the leases (unless
// the test hook crashed the replica) and leaves the replicas.
func (c *cluster) close() error {
	c.stopped.Do(func() { close(c.stop) })
	c.stopCtx()
	c.wg.Wait()
	c.mu.Lock()
	parts := slices.Collect(maps.Values(c.parts))
	c.parts = map[int]*part{}
	c.rebuild()
	c.mu.Unlock()
	var wg sync.WaitGroup
	for _, pt := range parts {
		if pt.eng != nil {
			wg.Go(func() { pt.eng.Close() })
		}
	}
	wg.Wait()
	var errs []error
	if !c.crashed.Load() {
		ctx, cancel := context.WithTimeout(context.Background(), releaseTimeout)
		for _, pt := range parts {
			if err := c.db.Release(ctx, pt.lease); err != nil {
				errs = append(errs, fmt.Errorf("releasing partition %d: %w", pt.p, err))
			}
		}
		if err := c.db.Leave(ctx); err != nil {
			errs = append(errs, fmt.Errorf("leaving the replicas: %w", err))
		}
		cancel()
	}
	if err := c.db.Close(); err != nil {
		errs = append(errs, err)
	}
	c.fwdTr.CloseIdleConnections()
	return errors.Join(errs...)
}
