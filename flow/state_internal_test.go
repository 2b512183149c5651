package flow

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	sdkv1 "buf.build/gen/go/stealthrocket/dispatch-proto/protocolbuffers/go/dispatch/sdk/v1"
	"github.com/matryer/is"
	"github.com/rs/zerolog"

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

// TestIncompatibleStateIsLogged resumes a state that names a continuation
// this build does not have: the program logs a warning with the frame and
// the reason, and the call fails with INCOMPATIBLE_STATE (Dispatch
// restarts it) or, with FailOnIncompatible, with PERMANENT_ERROR.
func TestIncompatibleStateIsLogged(t *testing.T) {
	doc := stateDoc{Version: StateVersion, NextID: 1,
		Frames: []frameDoc{{Name: "flow.return", Env: cborNull}, {Name: "gone.renamed", Env: cborNull}},
		Wait:   &waitDoc{Mode: uint8(modeOne), Base: 1, N: 1, Sent: 1, Seen: []byte{0}},
	}
	data, err := serde.MarshalCBOR(doc)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		fail   bool
		status sdkv1.Status
		errHas []string
		logHas []string
	}{
		{"restart from the input", false, sdkv1.Status_STATUS_INCOMPATIBLE_STATE,
			[]string{`frame 0 "gone.renamed": no continuation is registered under this name`},
			[]string{`"level":"warn"`, `"function":"shop.order"`, `"dispatch_id":"d-1"`, `"frame":0`, `"continuation":"gone.renamed"`,
				"no continuation is registered under this name", "Dispatch restarts the call from its input, so what the flow did before runs again"}},
		{"FailOnIncompatible", true, sdkv1.Status_STATUS_PERMANENT_ERROR,
			[]string{`frame 0 "gone.renamed"`, "dispatch.FailOnIncompatible: the call fails rather than restart from its input"},
			[]string{`"level":"warn"`, `"frame":0`, `"continuation":"gone.renamed"`, "the call fails, and is not restarted from its input"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			var log bytes.Buffer
			cfg := flowrun.Config{Logger: zerolog.New(&log), FailOnIncompatible: tt.fail}
			req := &sdkv1.RunRequest{Function: "shop.order", DispatchId: "d-1", Directive: &sdkv1.RunRequest_PollResult{PollResult: &sdkv1.PollResult{
				State: &sdkv1.PollResult_TypedCoroutineState{TypedCoroutineState: stateAny(data)},
			}}}
			out := serve(context.Background(), cfg, req, nil)
			is.Equal(out.GetStatus(), tt.status)
			msg := out.GetExit().GetResult().GetError().GetMessage()
			for _, s := range tt.errHas {
				if !strings.Contains(msg, s) {
					t.Errorf("error %q lacks %q", msg, s)
				}
			}
			for _, s := range tt.logHas {
				if !strings.Contains(log.String(), s) {
					t.Errorf("log %s lacks %q", log.String(), s)
				}
			}
		})
	}
}
