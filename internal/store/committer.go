package store

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"time"
)

// maxGroup bounds the number of batches applied in one transaction, so that
// a flood of steps still commits in bounded time (one more when the bound
// falls inside a pair of [Committer.SubmitPair], which is never split).
const maxGroup = 4096

// Default retry bounds of a failed transaction (see [CommitterOptions]).
const (
	defaultRetryFor   = 5 * time.Second
	defaultFirstRetry = 10 * time.Millisecond
	maxRetryWait      = time.Second
)

// CommitterOptions tune a [Committer]. The zero value takes the defaults.
type CommitterOptions struct {
	// RetryFor bounds how long a failed transaction is retried (with
	// exponential back-off from 10 ms, at most 1 s between tries) before
	// the committer gives up and fails for good; 5 s. Negative: no retry.
	RetryFor time.Duration
	// OnRetry, if set, is called on the writer goroutine with the error
	// of each failed try that will be retried. It must not block.
	OnRetry func(err error)
}

// Committer applies batches to a [Store] from a single writer goroutine,
// grouping every batch submitted while the previous transaction was being
// committed into the next one (group commit). Callbacks run on the writer
// goroutine, in submission order, after the transaction that holds their
// batch is durable; they must not block. [Committer.SubmitPair] queues two
// batches that must become durable together.
//
// A failed transaction is retried for a few seconds (the store promises
// that a failed Apply left nothing behind), except one refused by fencing
// ([ErrFenced]), which is final at once. If it still fails, the
// committer has failed for good: the callbacks of that transaction get the
// error, and every later batch is refused without being applied, so the
// store keeps a prefix of the submitted changes and never a later change
// without an earlier one. See [Committer.Err].
type Committer struct {
	st   Store
	opts CommitterOptions
	mu   sync.Mutex
	wake chan struct{}
	done chan struct{}

	pending  []pending
	closed   bool
	failed   error // the error that made the committer give up, sticky
	retrying bool  // a failed transaction is being retried
}

// maxAhead is the backlog from which [Committer.Behind] is true: a full
// group of batches waiting behind the transaction in flight.
const maxAhead = maxGroup

type pending struct {
	b  *Batch
	fn func(error)
	// joined: b goes in the same transaction as the batch queued before
	// it (SubmitPair).
	joined bool
}

// NewCommitter starts the writer goroutine of st. Close stops it.
func NewCommitter(st Store, opts CommitterOptions) *Committer {
	if opts.RetryFor == 0 {
		opts.RetryFor = defaultRetryFor
	}
	c := &Committer{
		st:   st,
		opts: opts,
		wake: make(chan struct{}, 1),
		done: make(chan struct{}),
	}
	go c.run()
	return c
}

// Submit queues b; fn (which may be nil) is called with the outcome once the
// transaction holding b has been committed or has failed for good. Submit
// never blocks on the store. After Close it returns ErrClosed, and once the
// committer has failed for good it returns that failure ([Committer.Err]);
// either way fn is never called.
func (c *Committer) Submit(b *Batch, fn func(error)) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	if c.failed != nil {
		err := c.failed
		c.mu.Unlock()
		return err
	}
	c.pending = append(c.pending, pending{b: b, fn: fn})
	c.mu.Unlock()
	c.signal()
	return nil
}

// SubmitPair queues first and then second, like two calls of Submit made
// at once, and promises more: both go in the same transaction, first
// applied before second, so that neither is ever durable without the
// other. Callbacks are called as Submit's are, firstFn before fn.
func (c *Committer) SubmitPair(first *Batch, firstFn func(error), second *Batch, fn func(error)) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	if c.failed != nil {
		err := c.failed
		c.mu.Unlock()
		return err
	}
	c.pending = append(c.pending, pending{b: first, fn: firstFn}, pending{b: second, fn: fn, joined: true})
	c.mu.Unlock()
	c.signal()
	return nil
}

// Behind reports whether the store is not keeping up: a failed
// transaction is being retried, or more than a full group of batches
// (4,096) waits behind the one in flight. A scheduler that acts on
// batches before they are durable (early start) asks first, so that what
// runs ahead of the store stays bounded: during a store outage nothing
// runs ahead (what did would be lost with the transaction), and a store
// slower than the work falls back to acting on durable changes only.
func (c *Committer) Behind() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.retrying || len(c.pending) > maxAhead
}

// signal wakes the writer.
func (c *Committer) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// Commit submits b and waits until it is durable.
func (c *Committer) Commit(ctx context.Context, b *Batch) error {
	ch := make(chan error, 1)
	if err := c.Submit(b, func(err error) { ch <- err }); err != nil {
		return err
	}
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		// The batch may still be committed: the caller must treat the
		// outcome as unknown, which for Dispatch means the ids are lost
		// but the calls run (at least once is the promise).
		return ctx.Err()
	}
}

// Err returns the error of the transaction the committer gave up on, or
// nil while every transaction has been committed.
func (c *Committer) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.failed
}

// Close commits what was submitted (retrying a failed transaction as
// usual, so Close may take up to RetryFor), stops the writer and returns. It does
// not close the underlying store.
func (c *Committer) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		<-c.done
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	c.signal()
	<-c.done
	return nil
}

func (c *Committer) run() {
	defer close(c.done)
	var group []pending
	var batches []*Batch
	for range c.wake {
		for {
			c.linger()
			c.mu.Lock()
			n := min(len(c.pending), maxGroup)
			for n < len(c.pending) && c.pending[n].joined {
				n++ // a pair is never split
			}
			group = append(group[:0], c.pending[:n]...)
			rest := copy(c.pending, c.pending[n:])
			clear(c.pending[rest:])
			c.pending = c.pending[:rest]
			closed, err := c.closed, c.failed // only this goroutine sets failed
			c.mu.Unlock()
			if len(group) == 0 {
				if closed {
					return
				}
				break
			}
			batches = batches[:0]
			for _, p := range group {
				batches = append(batches, p.b)
			}
			if err == nil {
				if err = c.apply(batches); err != nil {
					c.mu.Lock()
					c.failed = err
					c.mu.Unlock()
				}
			}
			for _, p := range group {
				if p.fn != nil {
					p.fn(err)
				}
			}
			clear(group)
			clear(batches)
		}
	}
}

// linger yields the processor before a transaction, again while that
// brings more batches (at most 4 times). Under load the goroutines about
// to submit are runnable and get to run first, so that their batches join
// this transaction: in `dispatch bench` (b) a transaction holds 5.7
// batches on average instead of 1.8, and each batch costs a third as much
// in a group of 8 as alone (BenchmarkWorkflowBatches). On an idle machine
// nothing else is runnable and Gosched returns at once, so a lone step is
// not delayed.
func (c *Committer) linger() {
	if runtime.GOMAXPROCS(0) == 1 {
		// One processor: Gosched could hand it to a goroutine that keeps
		// it for a whole time slice.
		return
	}
	c.mu.Lock()
	n := len(c.pending)
	c.mu.Unlock()
	for range 4 {
		runtime.Gosched()
		c.mu.Lock()
		m := len(c.pending)
		c.mu.Unlock()
		if m == n {
			return
		}
		n = m
	}
}

// apply applies batches, retrying a failure with back-off for up to
// RetryFor. A fenced Apply ([ErrFenced]) is not retried: the partition
// belongs to another owner, and no retry can make this store's writes
// valid again; giving up at once also stops the callers sooner.
func (c *Committer) apply(batches []*Batch) error {
	defer c.setRetrying(false)
	wait := defaultFirstRetry
	deadline := time.Now().Add(c.opts.RetryFor)
	for {
		err := c.st.Apply(context.Background(), batches...)
		if err == nil || errors.Is(err, ErrFenced) || c.opts.RetryFor < 0 || time.Now().Add(wait).After(deadline) {
			return err
		}
		c.setRetrying(true)
		if c.opts.OnRetry != nil {
			c.opts.OnRetry(err)
		}
		time.Sleep(wait)
		wait = min(2*wait, maxRetryWait)
	}
}

// setRetrying records whether a failed transaction is being retried
// ([Committer.Behind]).
func (c *Committer) setRetrying(v bool) {
	c.mu.Lock()
	c.retrying = v
	c.mu.Unlock()
}
