package status

import (
	"bytes"
	"fmt"
	"runtime/debug"
)

// PanicError is a panic recovered from user code, turned into an error so
// that the process lives on and the call fails with PERMANENT_ERROR. Its
// stack travels as the error's traceback.
type PanicError struct {
	// Value is the value passed to panic.
	Value any
	// Stack is the panicking goroutine's stack, as printed by
	// runtime/debug.Stack, starting at the function that panicked.
	Stack []byte
}

// Error returns "panic: " followed by the panic value.
func (e *PanicError) Error() string { return fmt.Sprintf("panic: %v", e.Value) }

// Unwrap returns the panic value if it is an error, so that errors.Is and
// errors.As can inspect it. The status stays PERMANENT_ERROR whatever the
// value: [Of] stops at the panic.
func (e *PanicError) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}

func (e *PanicError) explicitStatus() Status { return PermanentError }
func (e *PanicError) typeName() string       { return "dispatch.PanicError" }

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
