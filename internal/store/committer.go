package store

import (
	"context"
	"sync"
)

// maxGroup bounds the number of batches applied in one transaction, so that
// a flood of steps still commits in bounded time.
const maxGroup = 4096

// Committer applies batches to a [Store] from a single writer goroutine,
// grouping every batch submitted while the previous transaction was being
// committed into the next one (group commit). Callbacks run on the writer
// goroutine, in submission order, after the transaction that holds their
// batch is durable; they must not block.
type Committer struct {
	st   Store
	mu   sync.Mutex
	wake chan struct{}
	done chan struct{}

	pending []pending
	closed  bool
}

type pending struct {
	b  *Batch
	fn func(error)
}

// NewCommitter starts the writer goroutine of st. Close stops it.
func NewCommitter(st Store) *Committer {
	c := &Committer{
		st:   st,
		wake: make(chan struct{}, 1),
		done: make(chan struct{}),
	}
	go c.run()
	return c
}

// Submit queues b; fn (which may be nil) is called with the outcome once the
// transaction holding b has been committed or has failed. Submit never
// blocks on the store. After Close it returns ErrClosed and fn is never
// called.
func (c *Committer) Submit(b *Batch, fn func(error)) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	c.pending = append(c.pending, pending{b, fn})
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	return nil
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

// Close commits what was submitted, stops the writer and returns. It does
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
	select {
	case c.wake <- struct{}{}:
	default:
	}
	<-c.done
	return nil
}

func (c *Committer) run() {
	defer close(c.done)
	var group []pending
	var batches []*Batch
	for range c.wake {
		for {
			c.mu.Lock()
			n := min(len(c.pending), maxGroup)
			group = append(group[:0], c.pending[:n]...)
			rest := copy(c.pending, c.pending[n:])
			clear(c.pending[rest:])
			c.pending = c.pending[:rest]
			closed := c.closed
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
			err := c.st.Apply(context.Background(), batches...)
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
