package pgstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/dispatchkit/dispatch/internal/store"
)

// The bounds of one transaction of a cluster's writer: at most
// maxGroupApplies Applies, and no more batches than maxGroupBatches
// (unless one Apply alone has more); the rest wait for the next
// transaction. A scheduler's committer already groups its batches into
// one Apply, so a transaction of a replica rarely carries more than one
// Apply per partition; the bound keeps a transaction, and the retry of a
// failed one, from growing without limit under a backlog.
const (
	maxGroupApplies = 64
	maxGroupBatches = 1024
)

// writer is the one writer of a [Cluster]: the stores of all its
// partitions hand their Applies to it, and its goroutine writes all those
// waiting in one transaction, one round trip and one WAL flush, however
// many partitions they come from. With one writer per partition a lone
// replica of 12 partitions ran 12 small transactions where one would do
// (see server/doc.go for what that cost). No timer: while a transaction
// is in flight the next Applies queue, and the next transaction takes
// them all (group commit as the load makes it). Two writers per replica
// (partition p always on writer (p-1) mod 2, so that a partition's Applies
// stay in order), tried so that the database could run two transactions'
// statements at once, measured no better on the 2-core machine with the
// database on the same cores: bench (b) in process, alternating, 1,990
// and 1,427 workflows/s with one writer, 1,873 and 1,642 with two, at more
// CPU per workflow (load 2.1-2.5); 501-503 against 390-404 at load 8.
type writer struct {
	pool  *pgxpool.Pool
	where string
	lock  *ownerLock

	wake    chan struct{} // 1-buffered: Applies arrived
	stop    chan struct{} // closed by close
	stopped chan struct{} // closed when run returns

	mu     sync.Mutex // guards queue and closed
	queue  []*applyReq
	closed bool

	buf applyBuf // the goroutine's only
	// onCommit, set by tests only, is called after each commit, before
	// its Applies return, with the partitions of its Applies, in the
	// order of the queue.
	onCommit func(parts []int)
}

// applyReq is one Apply of a partition's store, waiting for the writer.
type applyReq struct {
	s       *Store
	ctx     context.Context
	batches []*store.Batch
	done    chan error // 1-buffered: the outcome
}

func newWriter(pool *pgxpool.Pool, where string, lock *ownerLock) *writer {
	w := &writer{pool: pool, where: where, lock: lock,
		wake: make(chan struct{}, 1), stop: make(chan struct{}), stopped: make(chan struct{})}
	go w.run()
	return w
}

// apply hands batches of s to the writer and waits for the outcome. An
// Apply whose ctx ends while it waits in the queue is dropped with
// ctx.Err(); once the writer took it, it waits for the outcome, as the
// transaction may commit.
func (w *writer) apply(ctx context.Context, s *Store, batches []*store.Batch) error {
	r := &applyReq{s: s, ctx: ctx, batches: batches, done: make(chan error, 1)}
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return store.ErrClosed
	}
	w.queue = append(w.queue, r)
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default: // already woken
	}
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
	}
	w.mu.Lock()
	if i := slices.Index(w.queue, r); i >= 0 {
		w.queue = slices.Delete(w.queue, i, i+1)
		w.mu.Unlock()
		return ctx.Err()
	}
	w.mu.Unlock()
	return <-r.done
}

// close fails the Applies waiting with store.ErrClosed and waits for the
// transaction in flight, if any, to end (its Applies get its outcome).
func (w *writer) close() {
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		for _, r := range w.queue {
			r.done <- store.ErrClosed
		}
		w.queue = nil
		close(w.stop)
	}
	w.mu.Unlock()
	<-w.stopped
}

func (w *writer) run() {
	defer close(w.stopped)
	for {
		select {
		case <-w.stop:
			return
		case <-w.wake:
		}
		for {
			group := w.take()
			if len(group) == 0 {
				break
			}
			w.commit(group)
		}
	}
}

// take removes the Applies of the next transaction from the head of the
// queue, in order, within the bounds; those whose ctx ended are failed
// with ctx.Err() (nothing of them was sent).
func (w *writer) take() []*applyReq {
	w.mu.Lock()
	defer w.mu.Unlock()
	var group []*applyReq
	n, batches := 0, 0
	for _, r := range w.queue {
		if len(group) == maxGroupApplies || (len(group) > 0 && batches+len(r.batches) > maxGroupBatches) {
			break
		}
		n++
		if err := r.ctx.Err(); err != nil {
			r.done <- err
			continue
		}
		group = append(group, r)
		batches += len(r.batches)
	}
	w.queue = slices.Delete(w.queue, 0, n)
	return group
}

// commit writes group in one transaction: the fence of each partition
// involved first, in ascending order, then the net rows of all their
// batches. When the fence of one partition fails, the Applies of that
// partition fail with a [*FencedError] and the rest are sent again at
// once without them; any other error fails all the Applies of the
// transaction, each all-or-nothing as an Apply is (their committers
// retry).
func (w *writer) commit(group []*applyReq) {
	for len(group) > 0 {
		if err := w.lock.err(); err != nil {
			for _, r := range group {
				r.done <- err
			}
			return
		}
		var fences []scope
		var hooks []func()
		w.buf.reset()
		for _, r := range group {
			w.buf.add(r.batches, r.s.sc.part)
			if !slices.Contains(fences, r.s.sc) {
				fences = append(fences, r.s.sc)
			}
			if r.s.hook != nil {
				hooks = append(hooks, r.s.hook)
			}
		}
		slices.SortFunc(fences, func(x, y scope) int {
			return cmp.Or(cmp.Compare(x.part, y.part), cmp.Compare(x.epoch, y.epoch))
		})
		b := &pgx.Batch{}
		for _, sc := range fences {
			b.Queue(sqlFence, int32(sc.part), sc.epoch)
		}
		w.buf.queue(b)
		failed, err := w.send(b, len(fences), hooks)
		if err == nil {
			if w.onCommit != nil {
				parts := make([]int, len(group))
				for i, r := range group {
					parts[i] = r.s.sc.part
				}
				w.onCommit(parts)
			}
			for _, r := range group {
				r.done <- nil
			}
			return
		}
		if failed < 0 {
			for _, r := range group {
				r.done <- fmt.Errorf("pgstore: applying %d batches to %s: %w", len(r.batches), w.where, err)
			}
			return
		}
		sc := fences[failed]
		group = slices.DeleteFunc(group, func(r *applyReq) bool {
			if r.s.sc != sc {
				return false
			}
			r.done <- &FencedError{Partition: sc.part, Epoch: sc.epoch}
			return true
		})
	}
}

// send runs b, whose first fences statements are fences, as one
// transaction (see sendTx). The transaction is not bound to the ctx of
// any Apply (it carries several): applyTimeout bounds it.
func (w *writer) send(b *pgx.Batch, fences int, hooks []func()) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), applyTimeout)
	defer cancel()
	return sendTx(ctx, w.pool, b, fences, hooks)
}

// sendTx runs b, whose first fences statements are fences, as one
// transaction on pool: the implicit one of a pgx.Batch, or, when there
// are test hooks, an explicit one that calls them before it commits.
// When a fence fails it returns its index, else -1. Both the single
// owner's Apply and the cluster's writer send through it.
func sendTx(ctx context.Context, pool *pgxpool.Pool, b *pgx.Batch, fences int, hooks []func()) (int, error) {
	var br pgx.BatchResults
	var tx pgx.Tx
	if len(hooks) == 0 {
		br = pool.SendBatch(ctx, b)
	} else {
		var err error
		if tx, err = pool.Begin(ctx); err != nil {
			return -1, err
		}
		defer tx.Rollback(context.Background())
		br = tx.SendBatch(ctx, b)
	}
	for i := range fences {
		if _, err := br.Exec(); err != nil {
			br.Close()
			var pgErr *pgconn.PgError
			if errors.As(err, &pgErr) && pgErr.Code == fenceCode {
				return i, err
			}
			return -1, err
		}
	}
	if err := br.Close(); err != nil {
		return -1, err
	}
	if tx == nil {
		return -1, nil
	}
	for _, h := range hooks {
		h()
	}
	return -1, tx.Commit(ctx)
}
