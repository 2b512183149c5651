package scheduler

import (
	"context"
	"net/http"

	"buf.build/gen/go/stealthrocket/dispatch-proto/connectrpc/go/dispatch/sdk/v1/sdkv1connect"
	sdkv1 "buf.build/gen/go/stealthrocket/dispatch-proto/protocolbuffers/go/dispatch/sdk/v1"
	"connectrpc.com/connect"
)

// LocalEndpoint is an endpoint served in the engine's own process: its Run
// requests are calls of Run, with the RunRequest and RunResponse values
// themselves (no HTTP, no signature: nothing leaves the
// process).
//
// Run is the function service's Run after decoding. A *connect.Error it
// returns is classified as the HTTP status connect would answer for its
// code (400 for invalid_argument, 404 for not_found, ...), so that an
// outcome is the same in process as over HTTP. The attempt timeout is the
// deadline of Run's context; a Run that does not return by then is left
// running (as an HTTP handler would be) and the attempt times out.
// MaxResponseBytes does not apply: the answer is not read from a wire.
type LocalEndpoint struct {
	URL string
	Run func(ctx context.Context, req *sdkv1.RunRequest) (*sdkv1.RunResponse, error)
}

// inprocClient is the FunctionServiceClient of a LocalEndpoint.
//
// Run calls the function on another goroutine than the engine's worker,
// which waits for it or for the attempt's deadline: a function that
// ignores its context must not keep the attempt from timing out, as over
// HTTP. That goroutine is one of pool's, reused from one run to the next
// (workers.go); pool has no wait group: the engine does not wait for a
// stuck function at Close.
type inprocClient struct {
	sdkv1connect.FunctionServiceClient // nil: only Run is called
	run                                func(context.Context, *sdkv1.RunRequest) (*sdkv1.RunResponse, error)
	pool                               workerPool
}

type inprocResult struct {
	res *sdkv1.RunResponse
	err error
}

func (c *inprocClient) Run(ctx context.Context, req *connect.Request[sdkv1.RunRequest]) (*connect.Response[sdkv1.RunResponse], error) {
	done := make(chan inprocResult, 1)
	c.pool.spawn(func() {
		res, err := c.run(ctx, req.Msg)
		done <- inprocResult{res, err}
	})
	var r inprocResult
	select {
	case r = <-done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if r.err != nil {
		if ce, ok := r.err.(*connect.Error); ok {
			if slot, ok := ctx.Value(slotKey{}).(*httpStatus); ok {
				slot.code = codeHTTP(ce.Code())
			}
		}
		return nil, r.err
	}
	if r.res == nil {
		r.res = &sdkv1.RunResponse{}
	}
	if slot, ok := ctx.Value(slotKey{}).(*httpStatus); ok {
		slot.code = http.StatusOK
	}
	return connect.NewResponse(r.res), nil
}

// codeHTTP is the HTTP status of a Connect error of code c, as connect's
// handlers answer it.
func codeHTTP(c connect.Code) int {
	switch c {
	case connect.CodeCanceled:
		return 499
	case connect.CodeInvalidArgument, connect.CodeFailedPrecondition, connect.CodeOutOfRange:
		return http.StatusBadRequest
	case connect.CodeDeadlineExceeded:
		return http.StatusGatewayTimeout
	case connect.CodeNotFound:
		return http.StatusNotFound
	case connect.CodeAlreadyExists, connect.CodeAborted:
		return http.StatusConflict
	case connect.CodePermissionDenied:
		return http.StatusForbidden
	case connect.CodeResourceExhausted:
		return http.StatusTooManyRequests
	case connect.CodeUnimplemented:
		return http.StatusNotImplemented
	case connect.CodeUnavailable:
		return http.StatusServiceUnavailable
	case connect.CodeUnauthenticated:
		return http.StatusUnauthorized
	}
	return http.StatusInternalServerError
}
