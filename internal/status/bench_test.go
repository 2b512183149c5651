package status_test

import (
	"fmt"
	"net"
	"os"
	"syscall"
	"testing"

	"github.com/dispatchkit/dispatch/internal/status"
)

func BenchmarkOf(b *testing.B) {
	refused := fmt.Errorf("call warehouse: %w", &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)})
	marked := status.MarkTemporary(refused)
	b.Run("classified", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			status.Of(refused)
		}
	})
	b.Run("marked", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			status.Of(marked)
		}
	})
}

func BenchmarkToProto(b *testing.B) {
	err := fmt.Errorf("charge: %w", status.MarkThrottled(&quotaError{Limit: 10, Used: 12}))
	b.ReportAllocs()
	for b.Loop() {
		status.ToProto(err)
	}
}
