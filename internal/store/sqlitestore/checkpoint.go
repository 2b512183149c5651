package sqlitestore

import (
	"context"
	"database/sql"
	"fmt"
)

// Checkpoints. In WAL mode a commit appends pages to the write-ahead log,
// and a checkpoint copies them back into the database file (and syncs
// it). SQLite's automatic checkpoint runs on the committing connection
// once the log holds 1000 pages, so every so often one commit took a
// checkpoint's time too: 4 to 6 ms where a commit takes 0.1 ms, the p99 of
// a workflow step (bench (a): p99 5–6 ms before, 1.3–1.8 ms after). Here a goroutine with its own connection checkpoints
// (PASSIVE: it waits for no one) after every checkpointEvery commits, beside
// the writer. The writer's automatic checkpoint stays, at walBackstop
// pages, for when the background one falls behind (a checkpoint that runs
// while commits keep coming never catches up with the end of the log, and
// only a checkpoint that does lets the next commit start the log over).
//
// The log may pass walBackstop pages by what the writer commits while a
// background checkpoint runs: the writer's checkpoint is PASSIVE too, and
// SQLite skips it while another connection holds the checkpoint lock. The
// first commit after the background checkpoint ends checkpoints the rest,
// and the next one starts the log over. (Without -race, a quiet machine
// saw up to about 4,800 pages, a loaded one up to about 12,000.)

const (
	// checkpointEvery is the number of commits between background
	// checkpoints: a commit appends about 5 pages, so about as often as
	// SQLite's own every 1000 pages.
	checkpointEvery = 200
	// walBackstop is the log size, in pages, at which the writer
	// checkpoints itself (SQLite's wal_autocheckpoint; its default is
	// 1000).
	walBackstop = 4000
)

type checkpointer struct {
	db   *sql.DB
	wake chan struct{}
	done chan struct{}
	n    int // commits since the last wake, counted by the writer

	// hook, when set (by tests, see Options.checkpointHook), is called at
	// each wake in place of the checkpoint, with the function that makes
	// it: the hook decides whether and when it runs.
	hook func(checkpoint func() error)
}

func newCheckpointer(path string, hook func(checkpoint func() error)) (*checkpointer, error) {
	db, err := sql.Open("sqlite", dsn(path, "busy_timeout(10000)"))
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: %w", err)
	}
	db.SetMaxOpenConns(1)
	c := &checkpointer{db: db, wake: make(chan struct{}, 1), done: make(chan struct{}), hook: hook}
	go c.run()
	return c, nil
}

// committed counts a commit and wakes the checkpointer every
// checkpointEvery of them. Called by the writer, one at a time.
func (c *checkpointer) committed() {
	if c.n++; c.n < checkpointEvery {
		return
	}
	c.n = 0
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *checkpointer) run() {
	defer close(c.done)
	for range c.wake {
		if c.hook != nil {
			c.hook(c.checkpoint)
			continue
		}
		// An error (the database busy, say) only delays the checkpoint:
		// the next wake or the writer's backstop does it.
		c.checkpoint()
	}
}

// checkpoint copies what it can of the log into the database, waiting for
// no one.
func (c *checkpointer) checkpoint() error {
	_, err := c.db.ExecContext(context.Background(), `PRAGMA wal_checkpoint(PASSIVE)`)
	return err
}

func (c *checkpointer) close() error {
	close(c.wake)
	<-c.done
	return c.db.Close()
}
