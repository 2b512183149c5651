package flow

import (
	"context"
	"errors"
	"testing"

	sdkv1 "buf.build/gen/go/stealthrocket/dispatch-proto/protocolbuffers/go/dispatch/sdk/v1"
	"github.com/matryer/is"

	"github.com/dispatchkit/dispatch/internal/flowrun"
	"github.com/dispatchkit/dispatch/internal/status"
	"github.com/dispatchkit/dispatch/serde"
)

// TestResumeInconsistentResults resumes states whose kept results are not
// what the wait keeps (crafted, or corrupted): each is answered with
// INCOMPATIBLE_STATE, and none makes Resume panic when the last result
// arrives and the kept ones are read.
func TestResumeInconsistentResults(t *testing.T) {
	failure := &errDoc{Type: "TIMEOUT", Message: "late"}
	tests := []struct {
		name   string
		mode   mode
		result resultDoc
	}{
		{"gather result with an error and a type out of range", modeAll, resultDoc{Index: 0, Type: 5, Err: failure}},
		{"gather result with a type out of range", modeAll, resultDoc{Index: 0, Type: 5}},
		{"any result without an error", modeAny, resultDoc{Index: 0, Type: -1}},
		{"await keeping a result", modeOne, resultDoc{Index: 0, Type: -1}},
		{"result for a call out of range", modeAll, resultDoc{Index: 7, Type: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			doc := stateDoc{Version: StateVersion, NextID: 3, Wait: &waitDoc{
				Mode: uint8(tt.mode), Base: 1, N: 2, Sent: 2,
				Seen:    []byte{0b01},
				Results: []resultDoc{tt.result},
			}}
			data, err := serde.MarshalCBOR(doc)
			is.NoErr(err)
			pr := &sdkv1.PollResult{
				State:   &sdkv1.PollResult_CoroutineState{CoroutineState: data},
				Results: []*sdkv1.CallResult{{CorrelationId: 2, Error: &sdkv1.Error{Type: "TIMEOUT", Message: "also late"}}},
			}
			out := resume(newCtx(context.Background(), Info{Function: "crafted", DispatchID: "c-1"}, flowrun.Config{}), pr) // must not panic
			is.Equal(out.GetStatus(), sdkv1.Status_STATUS_INCOMPATIBLE_STATE)
			err = status.FromProto(out.GetStatus(), out.GetExit().GetResult().GetError())
			is.True(errors.Is(err, status.ErrIncompatibleState))
		})
	}
}
