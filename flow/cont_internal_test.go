package flow

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/matryer/is"
)

var contCounter atomic.Int64

// nameOf returns a continuation name not registered yet, of n bytes.
func nameOf(n int) string {
	s := fmt.Sprintf("flowtest.len%d.", contCounter.Add(1))
	return s + strings.Repeat("x", n-len(s))
}

func TestContinuationNames(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cont string
		want string // in the error; "" for none
	}{
		{name: "256 bytes", cont: nameOf(256)},
		{name: "257 bytes", cont: nameOf(257), want: "is 257 bytes, at most 256"},
		{name: "long and invalid", cont: nameOf(1000) + "-", want: "is 1001 bytes, at most 256"},
		{name: "invalid", cont: "flowtest.a-b", want: "invalid continuation name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			err := registerSafely(&contDef{name: tt.cont})
			if tt.want == "" {
				is.NoErr(err)
				return
			}
			is.True(err != nil)
			is.True(strings.HasPrefix(err.Error(), "flow: "))
			is.True(strings.Contains(err.Error(), tt.want))
			is.True(len(err.Error()) < 200) // the name is shortened
		})
	}
}
