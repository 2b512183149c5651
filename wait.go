package dispatch

import (
	"context"
	"errors"
	"fmt"
	"time"

	sdkv1 "buf.build/gen/go/stealthrocket/dispatch-proto/protocolbuffers/go/dispatch/sdk/v1"
	"github.com/dispatchkit/dispatch/internal/callresult"
	"github.com/dispatchkit/dispatch/internal/status"
	"github.com/dispatchkit/dispatch/serde"
)

// Wait waits until the call with dispatch id id is finished (succeeded,
// failed for good, or expired) and returns its result: its output, or an
// [*Error] keeping the status, type and message of its failure.
//
// The protocol has no way to ask for a call's result, so Wait needs a
// Dispatch server that answers it: the local server, embedded (local mode)
// or started with `dispatch test`. On the hosted platform, have the
// workflow deliver its result itself. An id the server has no call for
// gives an error wrapping [ErrUnknownCall].
//
// In local mode Wait asks the embedded server directly; otherwise it
// long-polls the server's result route (GET
// /dispatch.local.v1/calls/{id}/result, 30 s a request) with a client of
// its own, so that the SDK does not link package server.
func (d *Dispatch) Wait(ctx context.Context, id string) (*sdkv1.CallResult, error) {
	var out *callresult.Outcome
	var err error
	if d.local != nil {
		out, err = d.local.Result(ctx, id)
	} else {
		out, err = callresult.Fetch(ctx, d.cfg.httpClient, d.cfg.apiURL, d.cfg.apiKey, id, 30*time.Second)
	}
	if err != nil {
		return nil, fmt.Errorf("dispatch: waiting for call %s: %w", id, err)
	}
	res := out.Result
	if e := status.FromProto(out.Status, res.GetError()); e != nil {
		e.DispatchID = id
		return res, e
	}
	return res, nil
}

// ErrUnknownCall is wrapped by the error of [Dispatch.Wait] for a dispatch
// id the server has no call for (its state was reset, or the id is from
// another server). It is server.ErrUnknownCall, declared where the SDK
// can use it without linking the server.
var ErrUnknownCall = callresult.ErrUnknownCall

// DispatchAndWait dispatches a call of the function with in, waits for it
// to finish, and returns its result, decoded into O. Dispatch retries the
// call as usual in the meantime; the error, if any, is the final one. See
// [Dispatch.Wait] for the servers that support it.
func (f *Function[I, O]) DispatchAndWait(ctx context.Context, in I) (O, error) {
	var out O
	d, err := Default()
	if err != nil {
		return out, err
	}
	ids, err := d.Dispatch(ctx, f.Call(in))
	if err != nil {
		return out, err
	}
	res, err := d.Wait(ctx, ids[0])
	if err != nil {
		var e *Error
		if errors.As(err, &e) {
			return out, fmt.Errorf("dispatch: %s (%s) failed: %w", f.name, ids[0], err)
		}
		return out, err
	}
	if err := serde.Unmarshal(res.GetOutput(), &out); err != nil {
		return out, fmt.Errorf("dispatch: result of %s (%s): %w", f.name, ids[0], err)
	}
	return out, nil
}
