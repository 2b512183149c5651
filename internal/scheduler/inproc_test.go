package scheduler

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	sdkv1 "buf.build/gen/go/stealthrocket/dispatch-proto/protocolbuffers/go/dispatch/sdk/v1"
	"connectrpc.com/connect"
	"github.com/matryer/is"
)

// TestInprocClient checks that an in-process Run's outcome is classified
// as the HTTP answer it stands for would be.
func TestInprocClient(t *testing.T) {
	block := make(chan struct{})
	defer close(block)
	tests := []struct {
		name string
		run  func(context.Context, *sdkv1.RunRequest) (*sdkv1.RunResponse, error)
		want sdkv1.Status
	}{
		{"ok", func(context.Context, *sdkv1.RunRequest) (*sdkv1.RunResponse, error) {
			return &sdkv1.RunResponse{Status: sdkv1.Status_STATUS_OK}, nil
		}, sdkv1.Status_STATUS_OK},
		{"temporary error", func(context.Context, *sdkv1.RunRequest) (*sdkv1.RunResponse, error) {
			return &sdkv1.RunResponse{Status: sdkv1.Status_STATUS_TEMPORARY_ERROR}, nil
		}, sdkv1.Status_STATUS_TEMPORARY_ERROR},
		{"not found (HTTP 404)", func(context.Context, *sdkv1.RunRequest) (*sdkv1.RunResponse, error) {
			return nil, connect.NewError(connect.CodeNotFound, errors.New("no such function"))
		}, sdkv1.Status_STATUS_NOT_FOUND},
		{"invalid argument (HTTP 400)", func(context.Context, *sdkv1.RunRequest) (*sdkv1.RunResponse, error) {
			return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("no function"))
		}, sdkv1.Status_STATUS_INVALID_ARGUMENT},
		{"unavailable (HTTP 503)", func(context.Context, *sdkv1.RunRequest) (*sdkv1.RunResponse, error) {
			return nil, connect.NewError(connect.CodeUnavailable, errors.New("busy"))
		}, sdkv1.Status_STATUS_TEMPORARY_ERROR},
		{"timeout", func(ctx context.Context, _ *sdkv1.RunRequest) (*sdkv1.RunResponse, error) {
			<-block // ignores its context, as a stuck function would
			return nil, nil
		}, sdkv1.Status_STATUS_TIMEOUT},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			quit := make(chan struct{})
			defer close(quit)
			c := &inprocClient{run: tt.run, pool: newWorkerPool(quit, nil)}
			slot := &httpStatus{}
			start := time.Now()
			deadline := start.Add(50 * time.Millisecond)
			ctx, cancel := context.WithDeadline(context.WithValue(context.Background(), slotKey{}, slot), deadline)
			defer cancel()
			res, err := c.Run(ctx, connect.NewRequest(&sdkv1.RunRequest{Function: "f"}))
			var o outcome
			if err == nil {
				o = answered(res.Msg)
			} else {
				o = failed(err, slot.code, ctx.Err() == context.DeadlineExceeded, deadline.Sub(start))
			}
			is.Equal(o.status, tt.want)
		})
	}
	is.New(t).Equal(codeHTTP(connect.CodeResourceExhausted), http.StatusTooManyRequests)
}
