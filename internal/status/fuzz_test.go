package status_test

import (
	"errors"
	"testing"

	sdkv1 "buf.build/gen/go/stealthrocket/dispatch-proto/protocolbuffers/go/dispatch/sdk/v1"
	"google.golang.org/protobuf/proto"

	"github.com/dispatchkit/dispatch/internal/status"
)

// FuzzFromProto feeds FromProto what a peer can send: any error message with
// any status. It must never panic, and the result must be a failure that
// ToProto can send on.
func FuzzFromProto(f *testing.F) {
	seed := func(s sdkv1.Status, err error) {
		_, pe := status.ToProto(err)
		b, _ := proto.Marshal(pe)
		f.Add(int32(s), b)
	}
	seed(sdkv1.Status_STATUS_UNSPECIFIED, status.MarkThrottled(&quotaError{Limit: 1, Used: 2}))
	seed(sdkv1.Status_STATUS_TEMPORARY_ERROR, codeError{Code: "x"})
	seed(sdkv1.Status_STATUS_NOT_FOUND, &status.HTTPStatusError{Code: 404})
	seed(sdkv1.Status_STATUS_OK, status.ErrNotFound)
	seed(99, errors.New("plain"))
	f.Add(int32(0), []byte{})

	f.Fuzz(func(t *testing.T, s int32, b []byte) {
		pe := new(sdkv1.Error)
		if err := proto.Unmarshal(b, pe); err != nil {
			return
		}
		err := status.FromProto(sdkv1.Status(s), pe)
		if err == nil {
			t.Fatal("FromProto returned nil for an error message")
		}
		if got := status.Of(err); got < status.Timeout || got > status.NotFound {
			t.Fatalf("a received error has status %v", got)
		}
		_ = err.Error()
		s2, _ := status.ToProto(err)
		if s2 == sdkv1.Status_STATUS_OK || s2 == sdkv1.Status_STATUS_UNSPECIFIED {
			t.Fatalf("ToProto gave %v for a received error", s2)
		}
	})
}
