package sqlitestore_test

import (
	"database/sql"
	"fmt"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/matryer/is"

	"github.com/dispatchkit/dispatch/internal/store"
	"github.com/dispatchkit/dispatch/internal/store/sqlitestore"
)

// BenchmarkWorkflowBatches applies the batches the scheduler makes for
// 3-step workflows (a root that awaits three children in turn: Dispatch,
// then poll, child exit, resume... and the root's exit), 32 workflows
// interleaved, grouped into transactions of group batches the way the
// committer groups concurrent steps. Each attempt goes into its call's row
// (RecentAttempts), as the scheduler keeps them until a call has 16. It
// reports the cost per batch: one batch per Run request plus one per
// Dispatch; cpu-ns/op is the CPU time of the process (the background
// checkpoints' included), steadier than the time on a shared machine.
func BenchmarkWorkflowBatches(b *testing.B) {
	for _, group := range []int{1, 8, 32} {
		b.Run(fmt.Sprintf("group=%d", group), func(b *testing.B) {
			s, err := sqlitestore.Open(filepath.Join(b.TempDir(), "dispatch.db"), sqlitestore.Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			w := &workflows{now: time.Unix(1_700_000_000, 0)}
			const concurrent = 32
			live := make([]*workflow, concurrent)
			for i := range live {
				live[i] = &workflow{}
			}
			pending := make([]*store.Batch, 0, group)
			i := 0
			cpu0 := cpuTime(b)
			for b.Loop() {
				k := i % concurrent
				i++
				batch, done := live[k].next(w)
				if done {
					live[k] = &workflow{}
				}
				pending = append(pending, batch)
				if len(pending) == group {
					if err := s.Apply(b.Context(), pending...); err != nil {
						b.Fatal(err)
					}
					pending = pending[:0]
				}
			}
			b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}

// cpuTime is the CPU time the process has used, user and system.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

type workflows struct {
	now time.Time
	seq int64
}

func (w *workflows) id() string {
	w.seq++
	return fmt.Sprintf("%020d", w.seq)
}

func (w *workflows) row(id, parent, root string) *store.Call {
	w.now = w.now.Add(time.Microsecond)
	return &store.Call{
		ID: id, ParentID: parent, RootID: root,
		Endpoint: "http://127.0.0.1:8000", Function: "step",
		InputType: "type.googleapis.com/google.protobuf.Int64Value", Input: []byte{8, 42},
		CreatedAt: w.now, ExpiresAt: w.now.Add(time.Hour), UpdatedAt: w.now,
		State: store.Pending,
	}
}

// workflow is one 3-step workflow: step counts the batches made.
type workflow struct {
	root  *store.Call
	child *store.Call
	step  int
}

// next returns the workflow's next batch, and whether it was the last.
func (f *workflow) next(w *workflows) (*store.Batch, bool) {
	defer func() { f.step++ }()
	// record keeps an attempt in c's row, as the scheduler does.
	// Every row of a call but its first is a rewrite, as the scheduler
	// marks them (store.Call.Rewrite).
	record := func(c *store.Call) {
		c.Rewrite = true
		c.Attempts++
		c.RecentAttempts = store.AppendAttempt(c.RecentAttempts,
			store.Attempt{N: c.Attempts, Start: w.now, Duration: 100 * time.Microsecond, Status: 1, Outcome: "exit"})
	}
	switch {
	case f.step == 0: // Dispatch
		id := w.id()
		f.root = w.row(id, "", id)
		return &store.Batch{Calls: []*store.Call{f.root}}, false
	case f.step%2 == 1 && f.step < 7: // the root polls: a new child
		root := *f.root
		record(&root)
		root.State = store.Suspended
		root.CoroutineState = make([]byte, 60)
		root.MinResults, root.MaxResults = 1, 1
		b := &store.Batch{}
		if f.step > 1 { // the resume consumed the previous child's result
			b.Delivered = []store.ResultKey{{ParentID: root.ID, ChildID: f.child.ID}}
		}
		f.root = &root
		f.child = w.row(w.id(), root.ID, root.ID)
		b.Calls = []*store.Call{f.root, f.child}
		return b, false
	case f.step%2 == 0: // the child exits
		child := *f.child
		record(&child)
		b := &store.Batch{}
		child.State = store.Done
		child.Output = []byte{10, 2, 8, 42}
		b.Calls = []*store.Call{&child}
		b.Results = []store.Result{{ParentID: child.ParentID, ChildID: child.ID, Seq: w.seq, Data: make([]byte, 40)}}
		return b, false
	default: // the root exits
		root := *f.root
		record(&root)
		b := &store.Batch{Delivered: []store.ResultKey{{ParentID: root.ID, ChildID: f.child.ID}}}
		root.State = store.Done
		root.CoroutineState = nil
		root.Output = []byte{10, 2, 8, 42}
		b.Calls = []*store.Call{&root}
		b.ClearInbox = []string{root.ID}
		return b, true
	}
}

// TestWriteCost measures what the write path costs per 3-step workflow
// (the batches of BenchmarkWorkflowBatches, in transactions of 1, 8 (about
// the 5.7 batches a transaction holds in `dispatch bench` (b)) and 32):
// the statements run, the rows they change and the pages appended to the
// write-ahead log (each costs two writes to the log file, its frame header
// and the page: most of a commit's CPU, and a page to copy back at the
// next checkpoint). It fails when one of them grows past the figure
// measured when the write path was last tuned, so that a change that
// costs more is a decision, not an accident. With no background
// checkpoint (the hook runs none) and fewer pages than the writer's
// backstop, the log holds every page appended.
//
// The pages are about one per B-tree a commit touches, whatever the
// number of batches: the right-hand leaf of each index on created_at or a
// new call's id, the leaves that hold the rows of the live calls, the
// results. Measured at 8 batches a transaction (6.0 pages): without
// calls_created and calls_parent 5.0, and 18% less CPU per batch in
// BenchmarkWorkflowBatches, but those two serve `dispatch calls` (200,000
// calls: the newest 100 in 2 ms instead of a 1.2 s scan); a calls table
// WITHOUT ROWID 6.3 pages, and 10% more CPU (its rows are the B-tree's
// keys, fewer to a page).
func TestWriteCost(t *testing.T) {
	const (
		count   = 64
		batches = 8 // per workflow
	)
	tests := []struct {
		group               int     // batches per transaction
		stmts, rows, frames float64 // the most per workflow
	}{
		{1, 33, 17, 38},
		{8, 9.4, 17, 6.1},
		{32, 7.2, 17, 2.1},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("group=%d", tt.group), func(t *testing.T) {
			is := is.New(t)
			path := filepath.Join(t.TempDir(), "dispatch.db")
			var opts sqlitestore.Options
			sqlitestore.SetCheckpointHook(&opts, func(func() error) {})
			s, err := sqlitestore.Open(path, opts)
			is.NoErr(err)
			defer s.Close()
			w := &workflows{now: time.Unix(1_700_000_000, 0)}
			live := make([]*workflow, 32)
			for i := range live {
				live[i] = &workflow{}
			}
			stmts0, rows0 := sqlitestore.Writes(s)
			frames0 := logFrames(t, path)
			// 32 workflows at a time, count in all: each of the 32 makes
			// its batches in turn, so count*batches of them end the last.
			var pending []*store.Batch
			for i := range count * batches {
				b, last := live[i%32].next(w)
				if last {
					live[i%32] = &workflow{}
				}
				if pending = append(pending, b); len(pending) == tt.group {
					is.NoErr(s.Apply(t.Context(), pending...))
					pending = pending[:0]
				}
			}
			is.Equal(len(pending), 0)
			stmts, rows := sqlitestore.Writes(s)
			frames := logFrames(t, path)
			is.True(frames < sqlitestore.WALBackstop) // no checkpoint started the log over
			n := float64(count)
			perStmts, perRows, perFrames := float64(stmts-stmts0)/n, float64(rows-rows0)/n, float64(frames-frames0)/n
			t.Logf("per workflow: %.2f statements, %.2f rows, %.2f log pages", perStmts, perRows, perFrames)
			is.True(perStmts <= tt.stmts)
			is.True(perRows <= tt.rows)
			is.True(perFrames <= tt.frames)
		})
	}
}

// logFrames is the number of pages in the write-ahead log of the database
// at path, read by a passive checkpoint.
func logFrames(t *testing.T, path string) int {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var busy, log, done int
	if err := db.QueryRow(`PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &log, &done); err != nil {
		t.Fatal(err)
	}
	return log
}
