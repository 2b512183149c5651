// Package testsync is what the module's tests use to wait for work done by
// other goroutines without sleeping blindly: [WaitFor] polls a condition
// until it holds or a deadline passes, and [Buffer] collects output that
// loggers and servers write concurrently. Only tests import it. The
// examples keep their own copies, so that each folder can be copied out
// of the module.
package testsync

import (
	"bytes"
	"sync"
	"testing"
	"time"
)

// Deadline is how long [WaitFor] waits before failing the test: long, so
// that a loaded machine (a noisy 2-core VM) does not fail a test that
// would pass, since a test that passes returns as soon as cond holds.
const Deadline = 30 * time.Second

// pollEvery is how often WaitFor checks its condition.
const pollEvery = 2 * time.Millisecond

// WaitFor returns once cond holds, checking it every few milliseconds, and
// fails the test (tb.Fatalf, "timed out waiting for <what>") if it does not
// within [Deadline]. Use it for states that no signal announces; prefer
// waiting on a channel when there is one.
func WaitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	waitFor(tb, Deadline, what, cond)
}

func waitFor(tb testing.TB, deadline time.Duration, what string, cond func() bool) {
	tb.Helper()
	end := time.Now().Add(deadline)
	for !cond() {
		if time.Now().After(end) {
			tb.Fatalf("timed out waiting for %s", what)
			return
		}
		time.Sleep(pollEvery)
	}
}

// Buffer is a bytes.Buffer safe for concurrent use, for the output of
// loggers and commands that run in other goroutines. The zero value is an
// empty buffer.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p to the buffer.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns what was written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Reset empties the buffer.
func (b *Buffer) Reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.b.Reset()
}
