package store_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/matryer/is"
	"go.uber.org/goleak"

	"github.com/dispatchkit/dispatch/internal/store"
	"github.com/dispatchkit/dispatch/internal/store/memstore"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var errIO = errors.New("test: I/O error")

// flaky fails the first n Applies (every one when n < 0).
type flaky struct {
	store.Store
	mu      sync.Mutex
	n       int
	applies int
}

func (f *flaky) Apply(ctx context.Context, batches ...*store.Batch) error {
	f.mu.Lock()
	f.applies++
	fail := f.n != 0
	if f.n > 0 {
		f.n--
	}
	f.mu.Unlock()
	if fail {
		return errIO
	}
	return f.Store.Apply(ctx, batches...)
}

func batch(id string) *store.Batch {
	now := time.Unix(1_700_000_000, 0)
	return &store.Batch{Calls: []*store.Call{{
		ID: id, RootID: id, Endpoint: "http://x", Function: "f",
		CreatedAt: now, ExpiresAt: now.Add(time.Hour), UpdatedAt: now, State: store.Pending,
	}}}
}

func TestCommitterFailures(t *testing.T) {
	tests := []struct {
		name     string
		failures int  // -1: always
		wantErr  bool // the batches fail for good
	}{
		{"no failure", 0, false},
		{"fails once then works", 1, false},
		{"fails three times then works", 3, false},
		{"always fails", -1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			ctx := context.Background()
			st := &flaky{Store: memstore.New(), n: tt.failures}
			defer st.Close()
			var retries int
			c := store.NewCommitter(st, store.CommitterOptions{
				RetryFor: 200 * time.Millisecond,
				OnRetry:  func(error) { retries++ }, // writer goroutine only
			})
			const n = 5
			errs := make(chan error, n)
			for i := range n {
				is.NoErr(c.Submit(batch(fmt.Sprint("c", i)), func(err error) { errs <- err }))
			}
			for range n {
				err := <-errs
				is.Equal(err != nil, tt.wantErr)
				if err != nil {
					is.True(errors.Is(err, errIO)) // the store's error
				}
			}
			is.NoErr(c.Close())
			if tt.failures > 0 {
				is.True(retries >= tt.failures) // retried, not given up
			}
			all, err := st.ListCalls(ctx, store.ListOptions{})
			is.NoErr(err)
			if !tt.wantErr {
				is.NoErr(c.Err())
				is.Equal(len(all), n) // nothing lost
				return
			}
			is.True(errors.Is(c.Err(), errIO))
			is.Equal(len(all), 0) // nothing applied after the failure
		})
	}
}

func TestCommitterStaysFailed(t *testing.T) {
	is := is.New(t)
	st := &flaky{Store: memstore.New(), n: 1}
	defer st.Close()
	c := store.NewCommitter(st, store.CommitterOptions{RetryFor: -1}) // no retry
	err := c.Commit(context.Background(), batch("a"))
	is.True(errors.Is(err, errIO))
	// The store works again, but a later batch could depend on the lost
	// one: it is refused without being applied.
	err = c.Submit(batch("b"), func(error) { t.Error("callback of a refused batch") })
	is.True(errors.Is(err, errIO))
	is.NoErr(c.Close())
	is.Equal(st.applies, 1)
	_, err = st.GetCall(context.Background(), "b")
	is.Equal(err, store.ErrNotFound)
	is.Equal(c.Submit(batch("c"), nil), store.ErrClosed) // closed wins
}

// gated records the batches of each Apply (by the id of their first
// call), and holds the Apply of batch "gate" until open is closed.
type gated struct {
	store.Store
	entered, open chan struct{}
	fail          bool
	mu            sync.Mutex
	groups        [][]string
}

func (g *gated) Apply(ctx context.Context, batches ...*store.Batch) error {
	var ids []string
	for _, b := range batches {
		ids = append(ids, b.Calls[0].ID)
	}
	g.mu.Lock()
	g.groups = append(g.groups, ids)
	g.mu.Unlock()
	if ids[0] == "gate" {
		close(g.entered)
		<-g.open
	}
	if g.fail {
		return errIO
	}
	return g.Store.Apply(ctx, batches...)
}

// TestCommitterPairs checks SubmitPair: the two batches of a pair go in
// one transaction, in order, even where a group reaches its bound, and
// their callbacks run in order with the same outcome.
func TestCommitterPairs(t *testing.T) {
	tests := []struct {
		name   string
		before int  // batches queued before the pair
		fail   bool // the store fails every Apply
	}{
		{"alone", 0, false},
		{"after others", 10, false},
		{"at a group's bound", store.MaxGroup - 1, false},
		{"failing", 3, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			g := &gated{Store: memstore.New(), entered: make(chan struct{}), open: make(chan struct{}), fail: tt.fail}
			defer g.Close()
			c := store.NewCommitter(g, store.CommitterOptions{RetryFor: -1})
			is.NoErr(c.Submit(batch("gate"), nil))
			<-g.entered // the writer is busy: what follows queues up
			for i := range tt.before {
				is.NoErr(c.Submit(batch(fmt.Sprint("b", i)), nil))
			}
			var mu sync.Mutex
			var called []string
			var errs []error
			cb := func(id string) func(error) {
				return func(err error) {
					mu.Lock()
					defer mu.Unlock()
					called = append(called, id)
					errs = append(errs, err)
				}
			}
			is.NoErr(c.SubmitPair(batch("first"), cb("first"), batch("second"), cb("second")))
			is.NoErr(c.Submit(batch("after"), nil))
			close(g.open)
			is.NoErr(c.Close())

			mu.Lock()
			defer mu.Unlock()
			is.Equal(called, []string{"first", "second"})
			is.Equal(errs[0] == nil, !tt.fail)
			is.Equal(errs[1] == nil, !tt.fail)
			if tt.fail {
				is.True(errors.Is(errs[0], errIO) && errors.Is(errs[1], errIO))
				return
			}
			g.mu.Lock()
			defer g.mu.Unlock()
			found := false
			for _, ids := range g.groups {
				for i, id := range ids {
					if id == "first" {
						is.True(i+1 < len(ids)) // not the last of its transaction
						is.Equal(ids[i+1], "second")
						found = true
					}
				}
			}
			is.True(found)
		})
	}
}

// fenced fails every Apply as a store whose partition's lease moved.
type fenced struct {
	store.Store
	mu      sync.Mutex
	applies int
}

func (f *fenced) Apply(context.Context, ...*store.Batch) error {
	f.mu.Lock()
	f.applies++
	f.mu.Unlock()
	return fmt.Errorf("test: partition 3 moved: %w", store.ErrFenced)
}

// A fenced Apply is not retried, however long RetryFor is: the committer
// gives up at once and refuses every later batch.
func TestCommitterFenced(t *testing.T) {
	is := is.New(t)
	st := &fenced{Store: memstore.New()}
	defer st.Close()
	var retries int
	c := store.NewCommitter(st, store.CommitterOptions{
		RetryFor: time.Hour, // a retry would hang the test
		OnRetry:  func(error) { retries++ },
	})
	err := c.Commit(context.Background(), batch("a"))
	is.True(errors.Is(err, store.ErrFenced))
	is.True(errors.Is(c.Err(), store.ErrFenced))
	err = c.Submit(batch("b"), func(error) { t.Error("callback of a refused batch") })
	is.True(errors.Is(err, store.ErrFenced))
	is.NoErr(c.Close())
	is.Equal(st.applies, 1)
	is.Equal(retries, 0)
}

func TestPartitionOf(t *testing.T) {
	is := is.New(t)
	tests := []struct {
		root string
		n    int
		want int
	}{
		{"anything", 0, 0},  // no partitions
		{"anything", -1, 0}, // no partitions
		{"anything", 1, 1},  // one
		{"", 12, 2},         // FNV-1a of "" is 2166136261; mod 12 is 1
		{"a", 12, 5},        // FNV-1a of "a" is 3826002220; mod 12 is 4
	}
	for _, tt := range tests {
		is.Equal(store.PartitionOf(tt.root, tt.n), tt.want)
	}
	// Every partition gets calls, about evenly.
	counts := make([]int, 13)
	for i := range 12_000 {
		counts[store.PartitionOf(fmt.Sprintf("%020d", i), 12)]++
	}
	is.Equal(counts[0], 0)
	for p := 1; p <= 12; p++ {
		is.True(counts[p] > 700 && counts[p] < 1300) // 1,000 each on average
	}
}

// TestCommitterBehind checks Behind: false while the store keeps up, true
// while a failed transaction is retried and while more than a full group
// of batches waits behind the one in flight, false again after.
func TestCommitterBehind(t *testing.T) {
	tests := []struct {
		name  string
		fail  bool // the gated Apply fails once, and is retried
		queue int  // batches submitted behind the gated one
		want  bool // Behind while the gated Apply is in flight (or retried)
	}{
		{name: "keeping up", queue: 10},
		{name: "a full group waiting", queue: 4097, want: true},
		{name: "retrying", fail: true, want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			st := &behindStore{Store: memstore.New(), entered: make(chan struct{}), open: make(chan struct{}), fail: tt.fail}
			defer st.Close()
			retried := make(chan struct{})
			c := store.NewCommitter(st, store.CommitterOptions{RetryFor: time.Minute, OnRetry: func(error) { close(retried) }})
			is.True(!c.Behind()) // nothing yet
			done := make(chan error, 1)
			is.NoErr(c.Submit(batch("gate"), func(err error) { done <- err }))
			<-st.entered
			if tt.fail {
				<-retried // the first try failed; the retry waits at the gate
			}
			for i := range tt.queue {
				is.NoErr(c.Submit(batch(fmt.Sprint("q", i)), nil))
			}
			is.Equal(c.Behind(), tt.want)
			close(st.open)
			is.NoErr(<-done)
			is.NoErr(c.Commit(context.Background(), batch("last"))) // every batch before it is durable
			is.True(!c.Behind())                                    // caught up
			is.NoErr(c.Close())
		})
	}
}

// behindStore holds the Applies of batch "gate" until open is closed;
// with fail, its first Apply fails (before the gate).
type behindStore struct {
	store.Store
	entered, open chan struct{}
	fail          bool
	once          sync.Once
	tries         int
}

func (g *behindStore) Apply(ctx context.Context, batches ...*store.Batch) error {
	if batches[0].Calls[0].ID == "gate" {
		g.tries++ // the writer goroutine only
		if g.fail && g.tries == 1 {
			return errIO
		}
		g.once.Do(func() { close(g.entered) })
		<-g.open
	}
	return g.Store.Apply(ctx, batches...)
}
