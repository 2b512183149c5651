package sqlitestore_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/matryer/is"
	"go.uber.org/goleak"

	"github.com/dispatchkit/dispatch/internal/store"
	"github.com/dispatchkit/dispatch/internal/store/sqlitestore"
	"github.com/dispatchkit/dispatch/internal/store/storetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestConformance(t *testing.T) {
	paths := map[store.Store]string{}
	storetest.Run(t, storetest.Opener{
		Open: func(t *testing.T) store.Store {
			path := filepath.Join(t.TempDir(), "dispatch.db")
			s, err := sqlitestore.Open(path, sqlitestore.Options{})
			if err != nil {
				t.Fatal(err)
			}
			paths[s] = path
			t.Cleanup(func() { s.Close() })
			return s
		},
		Reopen: func(t *testing.T, s store.Store) store.Store {
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s2, err := sqlitestore.Open(paths[s], sqlitestore.Options{FullSync: true})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s2.Close() })
			return s2
		},
	})
}

func TestReadOnly(t *testing.T) {
	is := is.New(t)
	path := filepath.Join(t.TempDir(), "dispatch.db")
	_, err := sqlitestore.OpenReadOnly(path)
	is.True(err != nil) // no database there
	s, err := sqlitestore.Open(path, sqlitestore.Options{})
	is.NoErr(err)
	defer s.Close()
	is.NoErr(s.Apply(t.Context(), &store.Batch{Calls: []*store.Call{{ID: "a", RootID: "a", State: store.Pending}}}))
	r, err := sqlitestore.OpenReadOnly(path)
	is.NoErr(err)
	defer r.Close()
	c, err := r.GetCall(t.Context(), "a")
	is.NoErr(err)
	is.Equal(c.ID, "a")
	is.True(r.Apply(t.Context(), &store.Batch{}) != nil)
}

// TestWALBounded checks that the write-ahead log does not grow without
// bound under a stream of commits: the background checkpoints, and the
// writer's own past walBackstop pages, keep it near walBackstop pages.
func TestWALBounded(t *testing.T) {
	is := is.New(t)
	path := filepath.Join(t.TempDir(), "dispatch.db")
	s, err := sqlitestore.Open(path, sqlitestore.Options{})
	is.NoErr(err)
	defer s.Close()
	w := &workflows{now: time.Unix(1_700_000_000, 0)}
	live := make([]*workflow, 32)
	for i := range live {
		live[i] = &workflow{}
	}
	var largest int64
	for i := range 6000 { // about 30,000 pages appended to the log
		b, done := live[i%32].next(w)
		if done {
			live[i%32] = &workflow{}
		}
		is.NoErr(s.Apply(t.Context(), b))
		if st, err := os.Stat(path + "-wal"); err == nil {
			largest = max(largest, st.Size())
		}
	}
	const page = 4096 + 24 // a WAL frame
	t.Logf("largest log: %d pages", largest/page)
	is.True(largest > 0)
	is.True(largest < (sqlitestore.WALBackstop+500)*page) // the log was started over
}
