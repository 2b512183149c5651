package status_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/matryer/is"

	"github.com/dispatchkit/dispatch/internal/status"
)

var errOrder = errors.New("order is gone")

//go:noinline
func explodingStep() error {
	var items []string
	_ = items[3] // index out of range
	return nil
}

//go:noinline
func panickingWithError() error {
	panic(errOrder)
}

func TestCatchPanic(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		fn       func() error
		message  string
		function string // must appear in the stack
	}{
		{"runtime error", explodingStep, "panic: runtime error: index out of range [3] with length 0", "status_test.explodingStep"},
		{"error value", panickingWithError, "panic: order is gone", "status_test.panickingWithError"},
		{"string value", func() error { panic("no way") }, "panic: no way", "status_test.TestCatchPanic.func"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			err := status.CatchPanic(tt.fn)
			var p *status.PanicError
			is.True(errors.As(err, &p))
			is.Equal(err.Error(), tt.message)
			is.Equal(status.Of(err), status.PermanentError)
			is.True(bytes.Contains(p.Stack, []byte(tt.function)))

			// The stack starts at the panicking function: the recovery
			// machinery is trimmed.
			is.True(bytes.HasPrefix(p.Stack, []byte("goroutine ")))
			is.True(!bytes.Contains(p.Stack, []byte("runtime/debug.Stack")))
			is.True(!bytes.Contains(p.Stack, []byte("\npanic(")))
			frames := strings.Split(string(p.Stack), "\n")
			is.True(len(frames) > 2)
			is.True(strings.Contains(frames[1], tt.function)) // the first frame

			// On the wire: PERMANENT_ERROR, with the stack as traceback.
			s, pe := status.ToProto(err)
			is.Equal(status.Status(s), status.PermanentError)
			is.Equal(pe.GetType(), "dispatch.PanicError")
			is.Equal(pe.GetMessage(), tt.message)
			is.Equal(pe.GetTraceback(), p.Stack)
		})
	}
}

func TestCatchPanicErrorValue(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	err := status.CatchPanic(panickingWithError)
	is.True(errors.Is(err, errOrder)) // the panic value is in the chain
}

func TestCatchPanicNoPanic(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	is.NoErr(status.CatchPanic(func() error { return nil }))
	err := status.CatchPanic(func() error { return errOrder })
	is.Equal(err, errOrder) // returned unchanged
}
