package dispatch

import (
	"context"
	"errors"
	"fmt"
	"sync"
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
	return f.wait(ctx, d, ids[0])
}

// Wait waits until the call of the function with dispatch id id is
// finished and returns its result, decoded into O as [Function.DispatchAndWait]
// does: the id of an earlier [Function.Dispatch] or [Function.DispatchKey],
// of this run of the program or of a previous one. A call that failed
// gives an error wrapping its [*Error] (errors.Is matches the sentinel of
// its status, and [ErrCanceled] for a cancelled call); an id the server
// has no call for, an error wrapping [ErrUnknownCall]. It uses the
// default [Dispatch] instance; see [Dispatch.Wait] for the servers that
// support it.
//
//	id, err := PlaceOrder.DispatchKey(ctx, "order-42", order)
//	...
//	receipt, err := PlaceOrder.Wait(ctx, id)
func (f *Function[I, O]) Wait(ctx context.Context, id string) (O, error) {
	d, err := Default()
	if err != nil {
		var out O
		return out, err
	}
	return f.wait(ctx, d, id)
}

// wait is Wait on the instance d.
func (f *Function[I, O]) wait(ctx context.Context, d *Dispatch, id string) (O, error) {
	var out O
	res, err := d.Wait(ctx, id)
	if err != nil {
		var e *Error
		if errors.As(err, &e) {
			return out, fmt.Errorf("dispatch: %s (%s) failed: %w", f.name, id, err)
		}
		return out, err
	}
	if err := serde.Unmarshal(res.GetOutput(), &out); err != nil {
		return out, &decodeError{fmt.Errorf("dispatch: result of %s (%s): %w", f.name, id, err)}
	}
	return out, nil
}

// decodeError is the error of a result that does not decode: the call's
// outcome, not a failure to wait.
type decodeError struct{ err error }

func (e *decodeError) Error() string { return e.err.Error() }
func (e *decodeError) Unwrap() error { return e.err }

// Result is the outcome of one call, as [Function.WaitAll] returns it:
// its value, or why it has none.
type Result[O any] struct {
	// ID is the call's dispatch id.
	ID string
	// Value is the call's result when Err is nil, else the zero value.
	Value O
	// Err is the call's failure, as [Function.Wait] returns it: an error
	// wrapping its [*Error], or one saying that its result does not
	// decode into O.
	Err error
}

// waitAllConcurrency bounds the waits WaitAll keeps in flight.
const waitAllConcurrency = 16

// WaitAll waits until every call of ids is finished and returns their
// outcomes, in the order of ids: the result of each call, or its failure
// in [Result.Err]. A batch dispatched together (Dispatch with many calls
// of the function, or its Calls) is waited for at once, without a
// goroutine per call in the program: WaitAll keeps at most 16 waits in
// flight, each returning as soon as its call is final.
//
// The error is for the waiting, not the calls: ctx ended, an id the
// server has no call for (wrapping [ErrUnknownCall]), or a server that
// cannot answer; WaitAll then stops waiting for the others and returns
// no results.
//
//	ids, err := d.Dispatch(ctx, Resize.Calls(images...)...)
//	...
//	results, err := Resize.WaitAll(ctx, ids...)
//	for _, r := range results {
//		if r.Err != nil { ... }
//	}
func (f *Function[I, O]) WaitAll(ctx context.Context, ids ...string) ([]Result[O], error) {
	d, err := Default()
	if err != nil {
		return nil, err
	}
	if len(ids) == 0 {
		return nil, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	out := make([]Result[O], len(ids))
	next := make(chan int)
	errs := make(chan error, 1)
	var wg sync.WaitGroup
	for range min(len(ids), waitAllConcurrency) {
		wg.Go(func() {
			for i := range next {
				v, err := f.wait(ctx, d, ids[i])
				var e *Error
				var de *decodeError
				if err != nil && !errors.As(err, &e) && !errors.As(err, &de) {
					select {
					case errs <- err:
					default:
					}
					cancel()
					continue
				}
				out[i] = Result[O]{ID: ids[i], Value: v, Err: err}
			}
		})
	}
	fed := 0
feed:
	for i := range ids {
		select {
		case next <- i:
			fed++
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	select {
	case err := <-errs:
		return nil, err
	default:
	}
	if fed < len(ids) {
		return nil, ctx.Err() // ended between two waits
	}
	return out, nil
}
