package dispatch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"buf.build/gen/go/stealthrocket/dispatch-proto/connectrpc/go/dispatch/sdk/v1/sdkv1connect"
	sdkv1 "buf.build/gen/go/stealthrocket/dispatch-proto/protocolbuffers/go/dispatch/sdk/v1"
	"connectrpc.com/connect"
	"github.com/dispatchkit/dispatch/internal/signature"
)

// Handler returns the endpoint Dispatch calls: an http.Handler serving
// FunctionService.Run over Connect, gRPC and gRPC-Web. Mount it on any mux
// under any prefix: it answers requests whose path ends with
// /dispatch.sdk.v1.FunctionService/Run and verifies their signature against
// the path as sent, prefix included.
//
// Errors of the request itself are HTTP/Connect errors: invalid_argument
// (400) for a body that is not a RunRequest or names no function,
// unauthenticated (401) for missing or malformed signature headers,
// permission_denied (403) for a signature that does not verify,
// not_found (404) for a function that is not registered, and
// resource_exhausted (413) for a body over the size limit. A function's own
// failure is not one of them: it is a 200 with a non-OK status.
func (d *Dispatch) Handler() http.Handler {
	svc := &functionService{rt: d.rt}
	_, h := sdkv1connect.NewFunctionServiceHandler(svc, connect.WithReadMaxBytes(int(d.cfg.maxRequestBytes)))
	return &endpoint{d: d, next: h, errw: connect.NewErrorWriter()}
}

type endpoint struct {
	d    *Dispatch
	next http.Handler
	errw *connect.ErrorWriter
}

func (e *endpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !strings.HasSuffix(r.URL.Path, sdkv1connect.FunctionServiceRunProcedure) {
		http.NotFound(w, r)
		return
	}
	limit := e.d.cfg.maxRequestBytes
	if r.ContentLength > limit {
		e.tooLarge(w, r, limit)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			e.tooLarge(w, r, limit)
			return
		}
		e.fail(w, r, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("dispatch: reading the request body: %w", err)))
		return
	}
	if v := e.d.verifier; v != nil {
		if err := v.Verify(r, body); err != nil {
			code := connect.CodePermissionDenied
			if errors.Is(err, signature.ErrMissing) {
				code = connect.CodeUnauthenticated
			}
			e.d.log.Warn().Err(err).Str("path", r.URL.Path).Msg("dispatch: rejected a request")
			e.fail(w, r, connect.NewError(code, err))
			return
		}
	}
	if len(body) == 0 {
		// Connect unary reads no body as an empty RunRequest (which names no
		// function: invalid_argument), but gRPC and gRPC-Web read it as no
		// message at all (unimplemented). PROTOCOL.md wants invalid_argument
		// for every protocol.
		e.fail(w, r, connect.NewError(connect.CodeInvalidArgument, errors.New("dispatch: the request has no body: want a RunRequest")))
		return
	}
	// A shallow copy with its own URL routes the request to the connect
	// handler's path (the endpoint may be mounted under any prefix); the
	// headers are not modified, so they are not cloned.
	r2 := new(http.Request)
	*r2 = *r
	u := *r.URL
	u.Path, u.RawPath = sdkv1connect.FunctionServiceRunProcedure, ""
	r2.URL = &u
	r2.Body = io.NopCloser(bytes.NewReader(body))
	r2.ContentLength = int64(len(body))
	e.next.ServeHTTP(w, r2)
}

func (e *endpoint) fail(w http.ResponseWriter, r *http.Request, err *connect.Error) {
	_ = e.errw.Write(w, r, err)
}

// tooLarge answers 413 to a Connect unary request (its error body is JSON),
// and resource_exhausted in the protocol's own framing otherwise.
func (e *endpoint) tooLarge(w http.ResponseWriter, r *http.Request, limit int64) {
	msg := fmt.Sprintf("dispatch: request body over the limit of %d bytes (WithMaxRequestBytes)", limit)
	ct := r.Header.Get("Content-Type")
	if strings.HasPrefix(ct, "application/proto") || strings.HasPrefix(ct, "application/json") {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusRequestEntityTooLarge)
		fmt.Fprintf(w, `{"code":"resource_exhausted","message":%q}`, msg)
		return
	}
	e.fail(w, r, connect.NewError(connect.CodeResourceExhausted, errors.New(msg)))
}

// functionService implements FunctionService.Run over the registry.
type functionService struct {
	sdkv1connect.UnimplementedFunctionServiceHandler
	rt *runtime
}

func (s *functionService) Run(ctx context.Context, req *connect.Request[sdkv1.RunRequest]) (*connect.Response[sdkv1.RunResponse], error) {
	name := req.Msg.GetFunction()
	if name == "" {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("dispatch: the RunRequest names no function"))
	}
	fn, ok := lookupFunction(name)
	if !ok {
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("dispatch: no function %q is registered here (registered: %s)", name, strings.Join(Functions(), ", ")))
	}
	return connect.NewResponse(fn.serve(ctx, s.rt, req.Msg)), nil
}
