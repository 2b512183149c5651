package sqlitestore_test

import (
	"fmt"
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

// TestPutCalls checks the rows a transaction writes several per statement:
// each call's last row, whole when a row of it was not a rewrite or its
// rewrite finds no row, in statements of up to 16 rows.
func TestPutCalls(t *testing.T) {
	row := func(id string, gen uint32, rewrite bool) *store.Call {
		return &store.Call{ID: id, RootID: id, Endpoint: "e-" + id, Input: []byte(id), Gen: gen,
			State: store.Pending, Rewrite: rewrite}
	}
	ids := func(n int) []string {
		var out []string
		for i := range n {
			out = append(out, fmt.Sprintf("c%02d", i))
		}
		return out
	}
	// manyRewrites rewrites c00 to c39, more than one statement holds,
	// then two of them again, past the rows looked up one by one (the map
	// of writer.find); manyWant is what it leaves.
	manyRewrites := func() [][]*store.Call {
		var b []*store.Call
		for _, id := range ids(40) {
			b = append(b, row(id, 2, true))
		}
		return [][]*store.Call{b, {row("c05", 3, true), row("c35", 3, true)}}
	}
	manyWant := func() map[string]uint32 {
		m := map[string]uint32{}
		for _, id := range ids(40) {
			m[id] = 2
		}
		m["c05"], m["c35"] = 3, 3
		return m
	}
	tests := []struct {
		name    string
		before  []string        // calls written whole in an earlier transaction
		batches [][]*store.Call // then these, in one transaction
		want    map[string]uint32
	}{
		{
			name:    "rewrites of rows there",
			before:  []string{"a", "b"},
			batches: [][]*store.Call{{row("a", 2, true)}, {row("b", 2, true)}},
			want:    map[string]uint32{"a": 2, "b": 2},
		},
		{
			name:    "a rewrite beside others finds no row",
			before:  []string{"a", "b"},
			batches: [][]*store.Call{{row("a", 2, true), row("lone", 2, true)}, {row("b", 2, true)}},
			want:    map[string]uint32{"a": 2, "b": 2, "lone": 2},
		},
		{
			name:    "a row and its rewrite in one transaction",
			batches: [][]*store.Call{{row("n", 1, false), row("m", 1, false)}, {row("n", 2, true)}, {row("n", 3, true)}},
			want:    map[string]uint32{"n": 3, "m": 1},
		},
		{
			name:    "more rows than one statement holds",
			before:  ids(20), // c20 to c39 find no row
			batches: manyRewrites(),
			want:    manyWant(),
		},
		{
			// Past the rows looked up one by one (the map of
			// writer.find): each call's last row is written, once.
			name:    "rewrites of a call twice among many",
			before:  ids(40),
			batches: manyRewrites(),
			want:    manyWant(),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			s, err := sqlitestore.Open(filepath.Join(t.TempDir(), "dispatch.db"), sqlitestore.Options{})
			is.NoErr(err)
			defer s.Close()
			var first store.Batch
			for _, id := range tt.before {
				first.Calls = append(first.Calls, row(id, 1, false))
			}
			is.NoErr(s.Apply(t.Context(), &first))
			var batches []*store.Batch
			for _, calls := range tt.batches {
				batches = append(batches, &store.Batch{Calls: calls})
			}
			is.NoErr(s.Apply(t.Context(), batches...))
			for id, gen := range tt.want {
				c, err := s.GetCall(t.Context(), id)
				is.NoErr(err)
				is.Equal(c.Gen, gen)
				is.Equal(c.Endpoint, "e-"+id) // the whole row, never a rewrite's part
				is.Equal(string(c.Input), id)
			}
			all, err := s.ListCalls(t.Context(), store.ListOptions{Limit: 1000})
			is.NoErr(err)
			is.Equal(len(all), len(tt.want))
		})
	}
}
