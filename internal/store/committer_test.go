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
