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
// bound under a stream of commits, both when the background checkpoints
// keep up (they alone start the log over, well before walBackstop pages)
// and when the background checkpointer does not run at all (the writer's
// own checkpoint at walBackstop pages does). A hook puts each background
// checkpoint between two commits, or skips it, so that how far the log
// grows does not depend on how fast a checkpoint runs beside the commits.
func TestWALBounded(t *testing.T) {
	const (
		commits = 3000      // about 15,000 pages appended to the log
		header  = 32        // the log's header
		frame   = 4096 + 24 // a page in the log
		backlog = sqlitestore.WALBackstop * frame
	)
	tests := []struct {
		name       string
		checkpoint bool // whether the hook runs the background checkpoints
		// check checks the log's largest size against the most one commit
		// added to it.
		check func(is *is.I, largest, commit int64)
	}{
		{"the background checkpoints keep up", true, func(is *is.I, largest, commit int64) {
			// The log holds at most the commits between two checkpoints.
			is.True(largest <= header+(sqlitestore.CheckpointEvery+1)*commit)
			is.True(largest < backlog/2) // far from the writer's backstop
		}},
		{"the background checkpointer falls behind", false, func(is *is.I, largest, commit int64) {
			is.True(largest >= backlog)              // only the backstop checkpoints
			is.True(largest < header+backlog+commit) // one commit past it at most
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			path := filepath.Join(t.TempDir(), "dispatch.db")
			var opts sqlitestore.Options
			ran := make(chan error, 1)
			wakes := 0 // written by the hook, read after Close
			sqlitestore.SetCheckpointHook(&opts, func(checkpoint func() error) {
				wakes++
				if tt.checkpoint {
					ran <- checkpoint()
				}
			})
			s, err := sqlitestore.Open(path, opts)
			is.NoErr(err)
			w := &workflows{now: time.Unix(1_700_000_000, 0)}
			live := make([]*workflow, 32)
			for i := range live {
				live[i] = &workflow{}
			}
			var largest, commit, last int64
			for i := range commits {
				b, done := live[i%32].next(w)
				if done {
					live[i%32] = &workflow{}
				}
				is.NoErr(s.Apply(t.Context(), b))
				if tt.checkpoint && (i+1)%sqlitestore.CheckpointEvery == 0 {
					// This commit woke the checkpointer: wait for its
					// checkpoint before the next commit.
					select {
					case err := <-ran:
						is.NoErr(err)
					case <-time.After(10 * time.Second):
						t.Fatalf("no background checkpoint after commit %d", i+1)
					}
				}
				st, err := os.Stat(path + "-wal")
				is.NoErr(err)
				if size := st.Size(); size > last {
					commit = max(commit, size-last)
					largest = max(largest, size)
				}
				last = st.Size()
			}
			is.NoErr(s.Close())
			t.Logf("largest log: %d pages; largest commit: %d pages; %d wakes", largest/frame, commit/frame, wakes)
			if tt.checkpoint {
				is.Equal(wakes, commits/sqlitestore.CheckpointEvery) // one checkpoint every CheckpointEvery commits
			} else {
				// Wakes that find the previous one not yet taken are
				// dropped, so only their presence is certain.
				is.True(wakes > 0) // the checkpointer was woken, and did nothing
			}
			tt.check(is, largest, commit)
		})
	}
}
