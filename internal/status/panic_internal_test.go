package status

import (
	"testing"

	"github.com/matryer/is"
)

func TestTrimStack(t *testing.T) {
	t.Parallel()
	const full = "goroutine 7 [running]:\n" +
		"runtime/debug.Stack()\n\t/go/src/runtime/debug/stack.go:26 +0x5e\n" +
		"example.CatchPanic.func1()\n\t/src/panic.go:40 +0x45\n" +
		"panic({0x1, 0x2})\n\t/go/src/runtime/panic.go:783 +0x132\n" +
		"example.step()\n\t/src/step.go:3 +0x9\n"
	tests := []struct {
		name, in, want string
	}{
		{"recovered panic", full, "goroutine 7 [running]:\nexample.step()\n\t/src/step.go:3 +0x9\n"},
		{"no panic frame", "goroutine 1 [running]:\nexample.f()\n\t/src/f.go:1 +0x1\n", "goroutine 1 [running]:\nexample.f()\n\t/src/f.go:1 +0x1\n"},
		{"panic frame first", "goroutine 1 [running]:\npanic({})\n\tpanic.go:1\nexample.f()\n\tf.go:1\n", "goroutine 1 [running]:\nexample.f()\n\tf.go:1\n"},
		{"one line", "goroutine 1 [running]:", "goroutine 1 [running]:"},
		{"empty", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			is.Equal(string(trimStack([]byte(tt.in))), tt.want)
		})
	}
}
