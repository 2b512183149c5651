package dispatcherr

import "fmt"

// PanicError is a panic recovered from user code, turned into an error so
// that the process lives on and the call fails with PERMANENT_ERROR. Its
// stack travels as the error's traceback, and a caller gets it back with
// errors.As (its type travels as "dispatch.PanicError").
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
// value: the classification stops at the panic.
func (e *PanicError) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}
