package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/dispatchkit/dispatch/internal/store"
)

// BenchWorkflowBatches applies the batches the scheduler makes for 3-step
// workflows (a root that awaits three children in turn: Dispatch, then
// poll, child exit, resume... and the root's exit), 32 workflows
// interleaved, grouped into transactions of 1, 8 and 32 batches the way
// the committer groups concurrent steps, to the stores open makes. Each
// attempt goes into its call's row (RecentAttempts), as the scheduler
// keeps them until a call has 16. It reports the cost per batch: one
// batch per Run request plus one per Dispatch. (The SQLite store's
// BenchmarkWorkflowBatches makes the same batches.)
func BenchWorkflowBatches(b *testing.B, open func(b *testing.B) store.Store) {
	for _, group := range []int{1, 8, 32} {
		b.Run(fmt.Sprintf("group=%d", group), func(b *testing.B) {
			s := open(b)
			w := &workflows{now: time.Unix(1_700_000_000, 0)}
			const concurrent = 32
			live := make([]*workflow, concurrent)
			for i := range live {
				live[i] = &workflow{}
			}
			pending := make([]*store.Batch, 0, group)
			i := 0
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
		})
	}
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
	record := func(c *store.Call) {
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
