package pgstore_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/matryer/is"

	"github.com/dispatchkit/dispatch/internal/pgtest"
	"github.com/dispatchkit/dispatch/internal/store"
	"github.com/dispatchkit/dispatch/internal/store/pgstore"
)

// commits records the partitions of each transaction of a cluster's
// writer.
type commits struct {
	mu  sync.Mutex
	txs [][]int
}

func (c *commits) hook(parts []int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.txs = append(c.txs, slices.Sorted(slices.Values(parts)))
}

func (c *commits) get() [][]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.txs)
}

// hold makes the writer of c busy with an Apply of s (whose transaction
// waits, uncommitted, until release is called), so that the Applies made
// meanwhile queue for the next transaction. It returns release and the
// outcome of the held Apply.
func hold(t *testing.T, s store.Store, id string) (release func(), applied <-chan error) {
	t.Helper()
	entered, released := make(chan struct{}), make(chan struct{})
	pgstore.SetApplyHook(s, func() {
		close(entered)
		<-released
	})
	out := make(chan error, 1)
	go func() { out <- s.Apply(context.Background(), &store.Batch{Calls: []*store.Call{call(id)}}) }()
	<-entered
	var once sync.Once
	release = func() { once.Do(func() { close(released) }) }
	t.Cleanup(release)
	return release, out
}

// waitQueued polls until n Applies wait for the writer of c.
func waitQueued(t *testing.T, c *pgstore.Cluster, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for pgstore.QueuedApplies(c) != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d Applies queued, want %d", pgstore.QueuedApplies(c), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// The Applies of three partitions made at once, from three goroutines,
// all land, each call in its own partition, and those that queued while a
// transaction was in flight share the next one.
func TestWriterGroupsPartitions(t *testing.T) {
	is := is.New(t)
	ctx := t.Context()
	c := openCluster(t, pgtest.URL(t), pgstore.ClusterOptions{Partitions: 4})
	var log commits
	pgstore.SetCommitHook(c, log.hook)
	stores := map[int]store.Store{}
	for p := 1; p <= 4; p++ {
		stores[p] = c.Store(acquire(t, c, p))
	}
	release, held := hold(t, stores[4], "held")

	var wg sync.WaitGroup
	errs := make([]error, 4)
	for p := 1; p <= 3; p++ {
		wg.Go(func() {
			a, b := &store.Batch{}, &store.Batch{Meta: map[string]string{fmt.Sprintf("m%d", p): "v"}}
			for i := range 5 { // 15 calls in all: one statement of arrays, with their partitions
				b.Calls = append(b.Calls, call(fmt.Sprintf("p%d-%d", p, i)))
			}
			a.Calls = b.Calls[:2:2]
			errs[p] = stores[p].Apply(ctx, a, b)
		})
	}
	waitQueued(t, c, 3)
	release()
	wg.Wait()
	is.NoErr(<-held)
	for p := 1; p <= 3; p++ {
		is.NoErr(errs[p])
	}
	is.Equal(log.get(), [][]int{{4}, {1, 2, 3}}) // one transaction for the three

	for p := 1; p <= 4; p++ {
		var ids []string
		is.NoErr(stores[p].Recover(ctx, func(c *store.Call, _ []store.Result) error {
			ids = append(ids, c.ID)
			return nil
		}))
		slices.Sort(ids)
		want := []string{"held"}
		if p < 4 {
			want = nil
			for i := range 5 {
				want = append(want, fmt.Sprintf("p%d-%d", p, i))
			}
		}
		is.Equal(ids, want) // each call in its partition
	}
	for p := 1; p <= 3; p++ {
		v, err := c.Reader().Meta(ctx, fmt.Sprintf("m%d", p))
		is.NoErr(err)
		is.Equal(v, "v")
	}
}

// With the one writer, a fenced partition fails only its own Applies:
// partition 2's lease taken by another replica, the Applies of 1 and 2
// sent in one transaction: 1's land (sent again without 2's), 2's fail
// fenced and write nothing.
func TestWriterFencesOnePartition(t *testing.T) {
	is := is.New(t)
	ctx := t.Context()
	_, a, b := replicasAB(t)
	var log commits
	pgstore.SetCommitHook(a, log.hook)
	s1, s3 := a.Store(acquire(t, a, 1)), a.Store(acquire(t, a, 3))
	l2 := acquire(t, a, 2)
	s2 := a.Store(l2)
	is.NoErr(a.Renew(ctx, l2, time.Millisecond)) // A's lease of 2 expires
	acquireWhenFree(t, b, 2)

	release, held := hold(t, s3, "held")
	var wg sync.WaitGroup
	var err1, err2 error
	wg.Go(func() { err1 = s1.Apply(ctx, &store.Batch{Calls: []*store.Call{call("one")}}) })
	wg.Go(func() {
		err2 = s2.Apply(ctx, &store.Batch{Calls: []*store.Call{call("two")}, Meta: map[string]string{"k2": "v"}})
	})
	waitQueued(t, a, 2)
	release()
	wg.Wait()
	is.NoErr(<-held)
	is.NoErr(err1)
	is.True(errors.Is(err2, store.ErrFenced))
	var fe *pgstore.FencedError
	is.True(errors.As(err2, &fe))
	is.Equal(*fe, pgstore.FencedError{Partition: 2, Epoch: l2.Epoch})
	is.Equal(log.get(), [][]int{{3}, {1}}) // 1's sent again alone

	r := b.Reader()
	_, err := r.GetCall(ctx, "one")
	is.NoErr(err)
	_, err = r.GetCall(ctx, "two")
	is.Equal(err, store.ErrNotFound)
	v, err := r.Meta(ctx, "k2")
	is.NoErr(err)
	is.Equal(v, "")
	err = s2.Apply(ctx, &store.Batch{Calls: []*store.Call{call("two")}})
	is.True(errors.Is(err, store.ErrFenced)) // for good
	is.NoErr(s1.Apply(ctx, &store.Batch{Calls: []*store.Call{call("one-more")}}))
}

// An Apply whose ctx ends while it waits for the writer is dropped and
// writes nothing; Close of the cluster fails those waiting with
// store.ErrClosed.
func TestWriterQueue(t *testing.T) {
	is := is.New(t)
	c, err := pgstore.OpenCluster(t.Context(), pgtest.URL(t), pgstore.ClusterOptions{})
	is.NoErr(err)
	defer c.Close()
	s1, s2, s3 := c.Store(acquire(t, c, 1)), c.Store(acquire(t, c, 2)), c.Store(acquire(t, c, 3))
	release, held := hold(t, s1, "held")

	ctx, cancel := context.WithCancel(t.Context())
	dropped := make(chan error, 1)
	go func() { dropped <- s2.Apply(ctx, &store.Batch{Calls: []*store.Call{call("dropped")}}) }()
	waitQueued(t, c, 1)
	cancel()
	is.Equal(<-dropped, context.Canceled)
	waitQueued(t, c, 0)

	closed := make(chan error, 1)
	go func() { closed <- s3.Apply(t.Context(), &store.Batch{Calls: []*store.Call{call("closed")}}) }()
	waitQueued(t, c, 1)
	done := make(chan error, 1)
	go func() { done <- c.Close() }()
	is.Equal(<-closed, store.ErrClosed) // at once, the transaction in flight still open
	release()
	is.NoErr(<-held) // the transaction in flight ends first
	is.NoErr(<-done)
	is.Equal(s3.Apply(t.Context(), &store.Batch{Calls: []*store.Call{call("late")}}), store.ErrClosed)
}
