package testsync

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/matryer/is"
)

// fakeTB records a failure instead of stopping the test.
type fakeTB struct {
	testing.TB
	failed string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.failed = fmt.Sprintf(format, args...)
}

func TestWaitFor(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		after  int32 // checks until cond holds; -1: never
		failed string
	}{
		{name: "holds at once", after: 0},
		{name: "holds later", after: 5},
		{name: "never holds", after: -1, failed: "timed out waiting for the thing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			var checks atomic.Int32
			cond := func() bool { return tt.after >= 0 && checks.Add(1) > tt.after }
			tb := &fakeTB{TB: t}
			waitFor(tb, 50*time.Millisecond, "the thing", cond)
			is.Equal(tb.failed, tt.failed)
		})
	}
}

func TestWaitForAnotherGoroutine(t *testing.T) {
	t.Parallel()
	var done atomic.Bool
	go func() { done.Store(true) }()
	WaitFor(t, "the goroutine", done.Load)
}

func TestBuffer(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	var b Buffer
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				fmt.Fprint(&b, "x")
			}
		})
	}
	wg.Wait()
	is.Equal(b.String(), strings.Repeat("x", 800)) // every write, none torn
	b.Reset()
	is.Equal(b.String(), "")
}
