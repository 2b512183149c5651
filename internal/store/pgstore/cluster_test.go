package pgstore_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/matryer/is"

	"github.com/dispatchkit/dispatch/internal/pgtest"
	"github.com/dispatchkit/dispatch/internal/store"
	"github.com/dispatchkit/dispatch/internal/store/pgstore"
	"github.com/dispatchkit/dispatch/internal/store/storetest"
)

func openCluster(t testing.TB, url string, opts pgstore.ClusterOptions) *pgstore.Cluster {
	t.Helper()
	c, err := pgstore.OpenCluster(context.Background(), url, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func acquire(t testing.TB, c *pgstore.Cluster, p int) pgstore.Lease {
	t.Helper()
	l, err := c.Acquire(context.Background(), p, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// replicasAB opens replicas A and B of a cluster on a fresh database,
// at url.
func replicasAB(t *testing.T) (url string, a, b *pgstore.Cluster) {
	t.Helper()
	url = pgtest.URL(t)
	a = openCluster(t, url, pgstore.ClusterOptions{Replica: "A"})
	b = openCluster(t, url, pgstore.ClusterOptions{Replica: "B"})
	return url, a, b
}

// acquireWhenFree polls c.Acquire of p until the lease held by another
// is free (it was made to expire).
func acquireWhenFree(t *testing.T, c *pgstore.Cluster, p int) pgstore.Lease {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		l, err := c.Acquire(t.Context(), p, time.Minute)
		if err == nil {
			return l
		}
		if !errors.Is(err, pgstore.ErrLeaseHeld) || time.Now().After(deadline) {
			t.Fatalf("acquiring partition %d: %v", p, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// call is a live root call.
func call(id string) *store.Call {
	return &store.Call{ID: id, RootID: id, Function: "f", State: store.Pending}
}

// The store of a partition passes the suite; reopening it is a new
// replica that acquires the partition its predecessor released.
func TestClusterConformance(t *testing.T) {
	const p = 3
	type opened struct {
		url string
		c   *pgstore.Cluster
		l   pgstore.Lease
	}
	stores := map[store.Store]opened{}
	storetest.Run(t, storetest.Opener{
		Open: func(t *testing.T) store.Store {
			url := pgtest.URL(t)
			c := openCluster(t, url, pgstore.ClusterOptions{})
			l := acquire(t, c, p)
			s := c.Store(l)
			stores[s] = opened{url, c, l}
			return s
		},
		Reopen: func(t *testing.T, s store.Store) store.Store {
			o := stores[s]
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if err := o.c.Release(t.Context(), o.l); err != nil {
				t.Fatal(err)
			}
			if err := o.c.Close(); err != nil {
				t.Fatal(err)
			}
			c := openCluster(t, o.url, pgstore.ClusterOptions{})
			l := acquire(t, c, p) // free at once: released
			if l.Epoch <= o.l.Epoch {
				t.Fatalf("epoch %d after %d", l.Epoch, o.l.Epoch)
			}
			s = c.Store(l)
			stores[s] = opened{o.url, c, l}
			return s
		},
	})
}

// A deposed owner writes nothing: once B holds partition 3 (A's lease
// expired), A's Apply fails fenced and leaves no row of any kind, its
// renewal fails, and its committer gives up at once.
func TestFencing(t *testing.T) {
	is := is.New(t)
	ctx := t.Context()
	_, a, b := replicasAB(t)
	la := acquire(t, a, 3)
	sa := a.Store(la)
	is.NoErr(sa.Apply(ctx, &store.Batch{Calls: []*store.Call{call("before")}}))

	_, err := b.Acquire(ctx, 3, time.Minute)
	is.True(errors.Is(err, pgstore.ErrLeaseHeld)) // live
	is.True(strings.Contains(err.Error(), "leased to A"))
	_, err = a.Acquire(ctx, 3, time.Minute)
	is.True(errors.Is(err, pgstore.ErrLeaseHeld)) // by itself too: it renews instead

	is.NoErr(a.Renew(ctx, la, time.Millisecond)) // A's lease expires: A stalled
	lb := acquireWhenFree(t, b, 3)
	is.Equal(lb.Epoch, la.Epoch+1)
	leases, err := a.Leases(ctx)
	is.NoErr(err)
	is.Equal(len(leases), pgstore.DefaultPartitions)
	is.Equal(leases[2], pgstore.LeaseInfo{Partition: 3, Owner: "B", Epoch: lb.Epoch, Held: true})
	is.Equal(leases[0].Held, false)

	// A resumes: nothing it writes lands, whatever the kind of row.
	err = sa.Apply(ctx, &store.Batch{
		Calls:    []*store.Call{call("after"), {ID: "before", RootID: "before", Function: "changed", State: store.Done}},
		Results:  []store.Result{{ParentID: "before", ChildID: "x", Seq: 1, Data: []byte("r")}},
		Attempts: []store.Attempt{{CallID: "before", N: 1, Outcome: "exit"}},
		Meta:     map[string]string{"k": "v"},
		Keys:     []store.Key{{Key: "key", IDs: []string{"after"}, ExpiresAt: time.Now().Add(time.Hour)}},
	})
	is.True(errors.Is(err, store.ErrFenced))
	var fe *pgstore.FencedError
	is.True(errors.As(err, &fe))
	is.Equal(*fe, pgstore.FencedError{Partition: 3, Epoch: la.Epoch})
	is.True(strings.Contains(err.Error(), "another replica took its lease"))
	r := b.Reader()
	_, err = r.GetCall(ctx, "after")
	is.Equal(err, store.ErrNotFound)
	c, err := r.GetCall(ctx, "before")
	is.NoErr(err)
	is.Equal(c.Function, "f") // unchanged
	v, err := r.Meta(ctx, "k")
	is.NoErr(err)
	is.Equal(v, "")
	_, err = r.Key(ctx, "key")
	is.Equal(err, store.ErrNoKey)
	atts, err := r.Attempts(ctx, "before")
	is.NoErr(err)
	is.Equal(len(atts), 0)
	is.Equal(inboxOf(t, b.Store(lb), "before"), []string(nil))

	err = a.Renew(ctx, la, time.Minute)
	is.True(errors.Is(err, store.ErrFenced)) // the lease is lost
	is.True(errors.As(err, &fe))
	is.NoErr(a.Release(ctx, la)) // a lost lease: nothing to release

	com := store.NewCommitter(a.Store(la), store.CommitterOptions{})
	err = com.Commit(ctx, &store.Batch{Calls: []*store.Call{call("later")}})
	is.True(errors.Is(err, store.ErrFenced)) // at once, not after 5 s of retries
	is.True(errors.Is(com.Err(), store.ErrFenced))
	is.NoErr(com.Close())

	// The new owner writes, and recovers what A committed before.
	sb := b.Store(lb)
	is.NoErr(sb.Apply(ctx, &store.Batch{Calls: []*store.Call{call("by-b")}}))
	var ids []string
	is.NoErr(sb.Recover(ctx, func(c *store.Call, _ []store.Result) error {
		ids = append(ids, c.ID)
		return nil
	}))
	is.Equal(len(ids), 2)
	is.True(ids[0] == "before" || ids[1] == "before")
	is.NoErr(b.Renew(ctx, lb, time.Minute))
}

// waitForLockWait polls until a session of the database waits for a row
// lock in a statement starting with prefix.
func waitForLockWait(t *testing.T, url, prefix string) {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	deadline := time.Now().Add(30 * time.Second)
	for {
		var n int
		err := conn.QueryRow(t.Context(), `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE $1`, prefix+"%").Scan(&n)
		if err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no session waits for a lock in %q", prefix)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// An Apply of the old owner in flight (its fence holds the partition's
// row) makes the new owner's Acquire wait until it commits: what it wrote
// is there for the new owner, whose epoch then wins.
func TestFenceInFlight(t *testing.T) {
	is := is.New(t)
	ctx := t.Context()
	url, a, b := replicasAB(t)
	la := acquire(t, a, 3)
	is.NoErr(a.Renew(ctx, la, time.Millisecond)) // expired, but no one took it: A still writes
	sa := a.Store(la)
	entered, release := make(chan struct{}), make(chan struct{})
	pgstore.SetApplyHook(sa, func() {
		close(entered)
		<-release
	})
	applied := make(chan error, 1)
	go func() { applied <- sa.Apply(ctx, &store.Batch{Calls: []*store.Call{call("in-flight")}}) }()
	<-entered // the batch ran, uncommitted, the fence's row lock held

	type acquired struct {
		l   pgstore.Lease
		err error
	}
	got := make(chan acquired, 1)
	go func() {
		l, err := b.Acquire(ctx, 3, time.Minute)
		got <- acquired{l, err}
	}()
	waitForLockWait(t, url, "UPDATE partitions")
	select {
	case g := <-got:
		t.Fatalf("Acquire returned while A's transaction was open: %+v", g)
	default:
	}
	close(release)
	is.NoErr(<-applied) // committed under A's epoch
	g := <-got
	is.NoErr(g.err)
	is.Equal(g.l.Epoch, la.Epoch+1)

	pgstore.SetApplyHook(sa, nil)
	err := sa.Apply(ctx, &store.Batch{Calls: []*store.Call{call("late")}})
	is.True(errors.Is(err, store.ErrFenced)) // B's epoch wins
	_, err = b.Reader().GetCall(ctx, "late")
	is.Equal(err, store.ErrNotFound)
	var ids []string
	is.NoErr(b.Store(g.l).Recover(ctx, func(c *store.Call, _ []store.Result) error {
		ids = append(ids, c.ID)
		return nil
	}))
	is.Equal(ids, []string{"in-flight"})
}

// Recover on the store of a partition yields only its live calls, each
// with its inbox; the reader reads every partition and recovers none.
func TestRecoverScoped(t *testing.T) {
	is := is.New(t)
	ctx := t.Context()
	url := pgtest.URL(t)
	c := openCluster(t, url, pgstore.ClusterOptions{})
	s1, s2 := c.Store(acquire(t, c, 1)), c.Store(acquire(t, c, 2))
	now := time.Unix(1_700_000_000, 0)
	mk := func(id, parent string, state store.CallState, age time.Duration) *store.Call {
		root := id
		if parent != "" {
			root = parent
		}
		return &store.Call{ID: id, ParentID: parent, RootID: root, State: state, CreatedAt: now.Add(-age)}
	}
	res := func(parent, child string, seq int64) store.Result {
		return store.Result{ParentID: parent, ChildID: child, Seq: seq, Data: []byte(child)}
	}
	is.NoErr(s1.Apply(ctx, &store.Batch{
		Calls:   []*store.Call{mk("p1", "", store.Suspended, 3*time.Second), mk("k1", "p1", store.Pending, 2*time.Second), mk("d1", "", store.Done, time.Hour)},
		Results: []store.Result{res("p1", "x", 1), res("p1", "y", 2)},
	}))
	is.NoErr(s2.Apply(ctx, &store.Batch{
		Calls:   []*store.Call{mk("p2", "", store.Suspended, 4*time.Second), mk("k2", "p2", store.Pending, time.Second)},
		Results: []store.Result{res("p2", "z", 1)},
	}))
	recovered := func(s store.Store) map[string][]string {
		out := map[string][]string{}
		var order []string
		is.NoErr(s.Recover(ctx, func(c *store.Call, in []store.Result) error {
			order = append(order, c.ID)
			out[c.ID] = []string{}
			for _, r := range in {
				out[c.ID] = append(out[c.ID], r.ChildID)
			}
			return nil
		}))
		out["order"] = order
		return out
	}
	is.Equal(recovered(s1), map[string][]string{"p1": {"x", "y"}, "k1": {}, "order": {"p1", "k1"}})
	is.Equal(recovered(s2), map[string][]string{"p2": {"z"}, "k2": {}, "order": {"p2", "k2"}})

	r := c.Reader()
	all, err := r.ListCalls(ctx, store.ListOptions{})
	is.NoErr(err)
	is.Equal(len(all), 5) // reads are global
	kids, err := s2.Children(ctx, "p1")
	is.NoErr(err)
	is.Equal(len(kids), 1)
	err = r.Recover(ctx, func(*store.Call, []store.Result) error { return nil })
	is.True(err != nil)
	is.True(strings.Contains(err.Error(), "Cluster.Store"))
	err = r.Apply(ctx, &store.Batch{Calls: []*store.Call{call("x")}})
	is.True(err != nil)
	is.True(strings.Contains(err.Error(), "writes nothing"))
	is.NoErr(r.Close())
	is.NoErr(s1.Close())
	_, err = r.GetCall(ctx, "p1")
	is.NoErr(err) // closing them leaves the cluster's pool open
	is.NoErr(s2.Apply(ctx, &store.Batch{Meta: map[string]string{"k": "v"}}))
}

// A single-owner store and the replicas of a cluster refuse each other,
// each with a LockedError that says who holds the database; replicas
// share it.
func TestClusterExcludesSingleOwner(t *testing.T) {
	tests := []struct {
		name  string
		first string // "single" or "cluster"
	}{
		{"cluster first", "cluster"},
		{"single owner first", "single"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			url := pgtest.URL(t)
			var locked *pgstore.LockedError
			if tt.first == "cluster" {
				c1 := openCluster(t, url, pgstore.ClusterOptions{})
				c2 := openCluster(t, url, pgstore.ClusterOptions{}) // replicas share
				is.True(c1.Replica() != c2.Replica())
				_, err := pgstore.Open(t.Context(), url, pgstore.Options{})
				is.True(errors.As(err, &locked))
				is.Equal(locked.Replicas, 2)
				is.True(strings.Contains(err.Error(), "2 replicas of a Dispatch cluster use the database"))
				is.NoErr(c1.Close())
				is.NoErr(c2.Close())
				s := open(t, url) // free once they are gone
				is.NoErr(s.Close())
				return
			}
			s, err := pgstore.Open(t.Context(), url, pgstore.Options{Owner: "solo"})
			is.NoErr(err)
			_, err = pgstore.OpenCluster(t.Context(), url, pgstore.ClusterOptions{})
			is.True(errors.As(err, &locked))
			is.Equal(locked.Owner, "solo")
			is.Equal(locked.Replicas, 0)
			is.True(strings.Contains(err.Error(), "another Dispatch server (solo) uses the database"))
			is.True(strings.Contains(err.Error(), "as its single owner"))
			is.NoErr(s.Close())
			c := openCluster(t, url, pgstore.ClusterOptions{})
			is.NoErr(c.Close())
		})
	}
}

// A single owner that opens the database while a replica's lock was lost
// unnoticed moves every partition's epoch on: the replica's stores write
// nothing more.
func TestSingleOwnerFencesReplicas(t *testing.T) {
	is := is.New(t)
	ctx := t.Context()
	url := pgtest.URL(t)
	c := openCluster(t, url, pgstore.ClusterOptions{Partitions: 4})
	l := acquire(t, c, 2)
	s := c.Store(l)
	is.NoErr(s.Apply(ctx, &store.Batch{Calls: []*store.Call{call("a")}}))
	terminateLock(t, url)
	var single *pgstore.Store
	deadline := time.Now().Add(30 * time.Second)
	for single == nil {
		var err error
		single, err = pgstore.Open(ctx, url, pgstore.Options{Owner: "solo"})
		var locked *pgstore.LockedError
		if err != nil && (!errors.As(err, &locked) || time.Now().After(deadline)) {
			t.Fatal(err) // the session ends a moment after it is told to
		}
		time.Sleep(5 * time.Millisecond)
	}
	defer single.Close()
	// Fenced, or refused first by the check of the lost lock: nothing
	// lands either way.
	err := s.Apply(ctx, &store.Batch{Calls: []*store.Call{call("b")}})
	is.True(err != nil)
	_, err = single.GetCall(ctx, "b")
	is.Equal(err, store.ErrNotFound)
	leases, err := c.Leases(ctx)
	is.NoErr(err)
	is.Equal(leases[1], pgstore.LeaseInfo{Partition: 2, Owner: c.Replica(), Epoch: l.Epoch + 1, Held: false})
	err = c.Renew(ctx, l, time.Minute)
	is.True(err != nil)
}

// A database of schema version 2 is migrated to 3 by the first replica:
// its rows stay, and its live calls get the partition of their root.
func TestMigrateFromVersion2(t *testing.T) {
	is := is.New(t)
	ctx := t.Context()
	url := pgtest.URL(t)
	row := func(id, parent, root string, state int) string {
		return fmt.Sprintf(`INSERT INTO calls (id, parent_id, root_id, parent_gen, gen, correlation_id, endpoint, function, version,
			input_type, created_at, expires_at, updated_at, state, attempts, restarts, state_type,
			min_results, max_results, poll_deadline, status)
		VALUES ('%s', '%s', '%s', 0, 0, 0, 'http://127.0.0.1:8000', 'fn', '', '', 1, 2, 3, %d, 0, 0, '', 0, 0, 0, 0)`, id, parent, root, state)
	}
	exec(t, url, pgstore.SchemaV1, pgstore.SchemaV2, `INSERT INTO schema_version (version) VALUES (2)`,
		row("r1", "", "r1", 2), row("k1", "r1", "r1", 1), row("r2", "", "r2", 1), row("d1", "", "d1", 3),
		`INSERT INTO results (parent_id, child_id, parent_gen, seq, data) VALUES ('r1', 'x', 0, 1, 'r')`,
		`INSERT INTO partitions (id, owner, epoch) VALUES (0, 'an older server', 7)`)
	const n = 4
	c := openCluster(t, url, pgstore.ClusterOptions{Partitions: n})
	is.Equal(c.Partitions(), n)

	conn, err := pgx.Connect(ctx, url)
	is.NoErr(err)
	defer conn.Close(context.Background())
	var v int
	is.NoErr(conn.QueryRow(ctx, `SELECT version FROM schema_version`).Scan(&v))
	is.Equal(v, 3)
	parts := map[string]int{}
	rows, err := conn.Query(ctx, `SELECT id, part FROM calls`)
	is.NoErr(err)
	for rows.Next() {
		var id string
		var p int
		is.NoErr(rows.Scan(&id, &p))
		parts[id] = p
	}
	is.NoErr(rows.Err())
	p1 := store.PartitionOf("r1", n)
	is.Equal(parts, map[string]int{"r1": p1, "k1": p1, "r2": store.PartitionOf("r2", n), "d1": 0}) // done calls stay in 0

	// The partition's store recovers them, with the inbox.
	is.Equal(inboxOf(t, c.Store(acquire(t, c, p1)), "r1"), []string{"x:r"})
	leases, err := c.Leases(ctx)
	is.NoErr(err)
	is.Equal(len(leases), n)

	// The number of partitions is kept: 0 takes it, another is refused.
	c2 := openCluster(t, url, pgstore.ClusterOptions{})
	is.Equal(c2.Partitions(), n)
	_, err = pgstore.OpenCluster(ctx, url, pgstore.ClusterOptions{Partitions: 12})
	is.True(err != nil)
	is.True(strings.Contains(err.Error(), "has 4 partitions"))
	is.True(strings.Contains(err.Error(), "cannot change"))
}

// Replicas opening a new database at once: one migrates and makes the
// partitions, all of them open, with the same number.
func TestConcurrentClusterOpens(t *testing.T) {
	is := is.New(t)
	url := pgtest.URL(t)
	const n = 4
	var wg sync.WaitGroup
	clusters := make([]*pgstore.Cluster, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			clusters[i], errs[i] = pgstore.OpenCluster(t.Context(), url, pgstore.ClusterOptions{Partitions: 6})
		})
	}
	wg.Wait()
	for i := range n {
		is.NoErr(errs[i])
		defer clusters[i].Close()
		is.Equal(clusters[i].Partitions(), 6)
	}
	leases, err := clusters[0].Leases(t.Context())
	is.NoErr(err)
	is.Equal(len(leases), 6)
	// Each partition is acquired by one replica.
	won := make([]int, n)
	for p := 1; p <= 6; p++ {
		for i := range n {
			wg.Go(func() {
				_, err := clusters[i].Acquire(t.Context(), p, time.Minute)
				switch {
				case err == nil:
					won[i]++
				case !errors.Is(err, pgstore.ErrLeaseHeld):
					t.Error(err)
				}
			})
		}
		wg.Wait()
	}
	total := 0
	for _, w := range won {
		total += w
	}
	is.Equal(total, 6)
}

// Heartbeats: the live replicas by name; an expired one is not listed; a
// replica that leaves is gone at once.
func TestHeartbeats(t *testing.T) {
	is := is.New(t)
	ctx := t.Context()
	url := pgtest.URL(t)
	a := openCluster(t, url, pgstore.ClusterOptions{Replica: "a"})
	b := openCluster(t, url, pgstore.ClusterOptions{Replica: "b"})
	is.NoErr(b.Heartbeat(ctx, "http://b", time.Minute))
	is.NoErr(a.Heartbeat(ctx, "http://a", time.Minute))
	reps, err := a.Replicas(ctx)
	is.NoErr(err)
	is.Equal(reps, []pgstore.ReplicaInfo{{Name: "a", URL: "http://a"}, {Name: "b", URL: "http://b"}})

	is.NoErr(b.Heartbeat(ctx, "http://b2", time.Millisecond)) // b stops beating
	deadline := time.Now().Add(30 * time.Second)
	for {
		reps, err = a.Replicas(ctx)
		is.NoErr(err)
		if len(reps) == 1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	is.Equal(reps, []pgstore.ReplicaInfo{{Name: "a", URL: "http://a"}})
	is.NoErr(a.Leave(ctx))
	reps, err = b.Replicas(ctx)
	is.NoErr(err)
	is.Equal(len(reps), 0)
	is.True(a.Heartbeat(ctx, "http://a", 0) != nil) // a time to live is needed
}

// Bad arguments and a closed cluster fail with what to do.
func TestClusterErrors(t *testing.T) {
	is := is.New(t)
	ctx := t.Context()
	url := pgtest.URL(t)
	_, err := pgstore.OpenCluster(ctx, url, pgstore.ClusterOptions{Partitions: -1})
	is.True(err != nil && strings.Contains(err.Error(), "use 1 to"))
	c := openCluster(t, url, pgstore.ClusterOptions{Partitions: 2})
	_, err = c.Acquire(ctx, 3, time.Minute)
	is.True(err != nil && strings.Contains(err.Error(), "partitions are 1 to 2"))
	_, err = c.Acquire(ctx, 0, time.Minute)
	is.True(err != nil)
	_, err = c.Acquire(ctx, 1, 0)
	is.True(err != nil && strings.Contains(err.Error(), "positive"))
	k1, made, err := c.SigningKey(ctx, func() (string, error) { return "k", nil })
	is.NoErr(err)
	is.True(made)
	is.Equal(k1, "k")
	is.NoErr(c.Close())
	_, err = c.Acquire(ctx, 1, time.Minute)
	is.Equal(err, store.ErrClosed)
	_, err = c.Leases(ctx)
	is.Equal(err, store.ErrClosed)
	is.NoErr(c.Close()) // twice is fine
}

// A replica whose lock's session ends takes no lease and writes nothing
// until it has taken the lock back; if a single owner had the database
// meanwhile, it stops for good.
func TestClusterLockLost(t *testing.T) {
	tests := []struct {
		name   string
		single bool // a single owner opens (and closes) the database meanwhile
	}{
		{"taken back", false},
		{"single owner meanwhile", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			ctx := t.Context()
			url := pgtest.URL(t)
			c := openCluster(t, url, pgstore.ClusterOptions{})
			l := acquire(t, c, 1)
			s := c.Store(l)
			terminateLock(t, url)
			deadline := time.Now().Add(30 * time.Second)
			for {
				c.CheckLock()
				_, err := c.Acquire(ctx, 2, time.Minute)
				if err != nil {
					is.True(strings.Contains(err.Error(), "writes nothing until it has taken the lock back"))
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("the lost lock was not noticed")
				}
				is.NoErr(c.Release(ctx, acquire(t, c, 2))) // not yet noticed: free it again
				time.Sleep(5 * time.Millisecond)           // the session ends a moment after it is told to
			}
			err := s.Apply(ctx, &store.Batch{Calls: []*store.Call{call("a")}})
			is.True(err != nil)
			is.True(!errors.Is(err, store.ErrFenced)) // for now: the committer retries
			if tt.single {
				single := open(t, url)
				is.NoErr(single.Close())
			}
			c.CheckLock()
			err = s.Apply(ctx, &store.Batch{Calls: []*store.Call{call("a")}})
			if !tt.single {
				is.NoErr(err) // taken back, the lease still valid
				is.NoErr(c.Renew(ctx, l, time.Minute))
				return
			}
			is.True(err != nil)
			is.True(strings.Contains(err.Error(), "writes nothing more"))
			_, err = c.Acquire(ctx, 2, time.Minute)
			is.True(err != nil && strings.Contains(err.Error(), "writes nothing more"))
		})
	}
}
