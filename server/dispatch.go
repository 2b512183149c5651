package server

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"strconv"
	"strings"
	"time"

	sdkv1 "buf.build/gen/go/stealthrocket/dispatch-proto/protocolbuffers/go/dispatch/sdk/v1"
	"buf.build/go/protovalidate"
	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	"github.com/dispatchkit/dispatch/internal/localapi"
	"github.com/dispatchkit/dispatch/internal/scheduler"
)

// dispatchService implements DispatchService.
type dispatchService struct {
	s         *Server
	validator protovalidate.Validator
}

// errUnauthenticated is the answer to a missing or wrong API key. It says
// which header is expected but never echoes a key.
var errUnauthenticated = errors.New(`dispatch: missing or wrong API key: expected header "Authorization: Bearer <key>" with the server's API key (DISPATCH_API_KEY)`)

// Dispatch records the calls (all or none) and returns their ids in order.
// A call without an endpoint takes Config.Endpoint before validation; with
// no Config.Endpoint such a call is invalid. Beside the protovalidate
// rules, each call's function name must be at most 256 bytes and its
// endpoint allowed by the endpoint policy (Config.AllowEndpoints). A
// request with an Idempotency-Key header starts its calls once per key
// (see "Idempotency keys" in the package documentation).
func (d *dispatchService) Dispatch(ctx context.Context, req *connect.Request[sdkv1.DispatchRequest]) (*connect.Response[sdkv1.DispatchResponse], error) {
	// Server.authorize checked the key before the body was read; checked
	// again here so that the service never runs without it.
	if !authorized(req.Header(), d.s.cfg.APIKey) {
		return nil, connect.NewError(connect.CodeUnauthenticated, errUnauthenticated)
	}
	msg := req.Msg
	for _, c := range msg.GetCalls() {
		if c.GetEndpoint() == "" {
			c.Endpoint = d.s.cfg.Endpoint
		}
	}
	// Calls plainly valid, with endpoints accepted before, skip
	// protovalidate (scheduler.Engine.SurelyValidDispatch); anything else
	// goes through it, which gives the error. A replica has an engine per
	// partition it owns: any of them will do, since they share the
	// replica's endpoint policy; while it owns none, the slow path.
	eng := d.s.engine
	if d.s.cl != nil {
		eng = d.s.cl.anyEngine()
	}
	if eng == nil || !eng.SurelyValidDispatch(msg.GetCalls()) {
		if err := d.validator.Validate(msg); err != nil {
			return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("dispatch: invalid DispatchRequest: %w", err))
		}
		for i, c := range msg.GetCalls() {
			if err := scheduler.CheckCall(d.s.policy, c); err != nil {
				return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("dispatch: call %d: %w", i, err))
			}
		}
		if eng != nil {
			eng.KnowEndpoints(msg.GetCalls())
		}
	}
	key, keyed, err := idempotencyKey(req.Header())
	if err != nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, err)
	}
	if len(msg.GetCalls()) == 0 {
		res := connect.NewResponse(&sdkv1.DispatchResponse{})
		if keyed {
			res.Header().Set(localapi.HeaderReplayed, "false") // nothing to start, nothing recorded
		}
		return res, nil
	}
	var ids []string
	var replayed bool
	switch {
	case d.s.cl != nil:
		// A replica: into a partition it owns, or forwarded to the owner
		// of the key's partition (replicas.go).
		ids, replayed, err = d.s.cl.dispatch(ctx, req.Header(), msg, key, keyed)
		var ce *connect.Error
		if errors.As(err, &ce) {
			return nil, ce // the owner's answer, or why there is none
		}
	case keyed:
		ids, replayed, err = d.s.engine.DispatchKey(ctx, key, msg.GetCalls())
	default:
		ids, err = d.s.engine.Dispatch(ctx, msg.GetCalls())
	}
	var conflict *scheduler.KeyConflictError
	if errors.As(err, &conflict) {
		return nil, connect.NewError(connect.CodeAlreadyExists, fmt.Errorf(
			"dispatch: idempotency key %q was used at %s for other calls (%s): a key names the calls of one request for %v (Config.KeyRetention, --key-retention of dispatch test); send the same calls to get their ids, or another key for other calls",
			conflict.Key, conflict.CreatedAt.UTC().Format(time.RFC3339), strings.Join(conflict.IDs, ", "), d.s.cfg.KeyRetention))
	}
	if code, ok := contextCode(err); ok {
		// Waiting for an earlier request with the key, or reading it:
		// nothing was recorded.
		return nil, connect.NewError(code, fmt.Errorf("dispatch: no call was recorded: %w", err))
	}
	if err != nil {
		if errors.Is(err, scheduler.ErrClosed) {
			return nil, connect.NewError(connect.CodeUnavailable, errors.New("dispatch: the server is shutting down; retry later"))
		}
		var se *scheduler.StoreError
		if errors.As(err, &se) {
			return nil, connect.NewError(connect.CodeUnavailable, storeFailed(se))
		}
		d.s.cfg.Logger.Error().Err(err).Msg("dispatch failed")
		return nil, connect.NewError(connect.CodeInternal, fmt.Errorf("dispatch: no call was recorded: %w", err))
	}
	res := connect.NewResponse(&sdkv1.DispatchResponse{DispatchIds: ids})
	if keyed {
		res.Header().Set(localapi.HeaderReplayed, strconv.FormatBool(replayed))
	}
	return res, nil
}

// DispatchInProcess is DispatchService's Dispatch for a client in this
// process (local mode's SDK, when the server calls its functions in
// process too): what the HTTP handler runs after decoding the request,
// with the same checks (the API key in req's Authorization header, the
// size limit of a request body, validation, the endpoint policy,
// idempotency keys), and errors as a client over HTTP would get them (a
// *connect.Error of the same code and message, without its cause).
//
// The server keeps what it is given (the calls' inputs, in the engine and
// the store), and the caller may reuse its request afterwards, so the
// request is copied first, as decoding it from a body would have: nothing
// the server keeps aliases the caller's memory. The copy costs a fraction
// of what the HTTP round trip did (marshaling, framing, net/http on both
// sides, protobuf decoding).
func (s *Server) DispatchInProcess(ctx context.Context, req *connect.Request[sdkv1.DispatchRequest]) (*connect.Response[sdkv1.DispatchResponse], error) {
	if n := proto.Size(req.Msg); n > maxRequestBytes {
		return nil, connect.NewError(connect.CodeResourceExhausted, fmt.Errorf("message size %d is larger than configured max %d", n, maxRequestBytes))
	}
	in := connect.NewRequest(proto.Clone(req.Msg).(*sdkv1.DispatchRequest))
	maps.Copy(in.Header(), req.Header())
	res, err := s.svc.Dispatch(ctx, in)
	if err != nil {
		var ce *connect.Error
		if errors.As(err, &ce) {
			wire := connect.NewWireError(ce.Code(), errors.New(ce.Message()))
			maps.Copy(wire.Meta(), ce.Meta())
			return nil, wire
		}
		return nil, err
	}
	return res, nil
}

// idempotencyKey reads the Idempotency-Key header of a Dispatch request:
// at most one, valid (see internal/localapi).
func idempotencyKey(h http.Header) (key string, ok bool, err error) {
	vals := h.Values(localapi.HeaderKey)
	switch len(vals) {
	case 0:
		return "", false, nil
	case 1:
	default:
		return "", false, fmt.Errorf("dispatch: %d %s headers: one key per request, naming its list of calls", len(vals), localapi.HeaderKey)
	}
	if err := localapi.CheckKey(vals[0]); err != nil {
		return "", false, fmt.Errorf("dispatch: header %s: %w", localapi.HeaderKey, err)
	}
	return vals[0], true, nil
}

// authorized reports whether h carries "Authorization: Bearer <key>"; the
// scheme is case-insensitive, the key is compared in constant time.
func authorized(h http.Header, key string) bool {
	auth := h.Get("Authorization")
	const scheme = "bearer "
	if len(auth) < len(scheme) || !strings.EqualFold(auth[:len(scheme)], scheme) {
		return false
	}
	got := strings.TrimSpace(auth[len(scheme):])
	return subtle.ConstantTimeCompare([]byte(got), []byte(key)) == 1
}

// storeFailed says that the store cannot write, and what that means for
// the calls.
func storeFailed(se *scheduler.StoreError) error {
	return fmt.Errorf("server: the store cannot write: %w; calls already accepted are kept and resume on restart", se.Err)
}

// contextCode is the code of a context's error.
func contextCode(err error) (connect.Code, bool) {
	switch {
	case errors.Is(err, context.Canceled):
		return connect.CodeCanceled, true
	case errors.Is(err, context.DeadlineExceeded):
		return connect.CodeDeadlineExceeded, true
	}
	return 0, false
}
