package status

import (
	"bytes"
	"runtime/debug"

	"github.com/dispatchkit/dispatch/dispatcherr"
)

// PanicError is a panic recovered from user code: [dispatcherr.PanicError],
// where its documentation lives. Its status is PERMANENT_ERROR.
type PanicError = dispatcherr.PanicError

// panicTypeName is the name of PanicError on the wire.
const panicTypeName = "dispatch.PanicError"

// CatchPanic calls fn and returns its error. If fn panics, CatchPanic
// recovers and returns a [*PanicError] holding the panic value and the stack
// of the panic. runtime.Goexit is not a panic and is not stopped.
func CatchPanic(fn func() error) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &PanicError{Value: v, Stack: trimStack(debug.Stack())}
		}
	}()
	return fn()
}

// trimStack removes from a stack printed by debug.Stack the frames of the
// recovery machinery (debug.Stack, the deferred function and runtime.panic),
// so that the first frame after the goroutine header is the function that
// panicked. A stack of an unexpected shape is returned whole.
func trimStack(stack []byte) []byte {
	header, rest, ok := bytes.Cut(stack, []byte("\n"))
	if !ok {
		return stack
	}
	// Each frame is two lines: the function, then "\tfile:line +0x...".
	// The frame of runtime's panic function starts with "panic(".
	i := bytes.Index(rest, []byte("\npanic("))
	if bytes.HasPrefix(rest, []byte("panic(")) {
		i = -1
	} else if i < 0 {
		return stack
	}
	after := rest[i+1:]
	_, after, _ = bytes.Cut(after, []byte("\n")) // the panic( line
	_, after, _ = bytes.Cut(after, []byte("\n")) // its file:line
	out := make([]byte, 0, len(header)+1+len(after))
	out = append(out, header...)
	out = append(out, '\n')
	return append(out, after...)
}
