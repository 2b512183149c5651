package dispatch

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"connectrpc.com/connect"

	"github.com/dispatchkit/dispatch/internal/localapi"
)

// Idempotent dispatch. DispatchKey starts calls once per key: a program
// that dispatches "order-42" again after a crash (it cannot know whether
// the first request was recorded) gets the ids of the first request and
// starts nothing.
//
// The protocol's DispatchRequest has no field for a key, so the key
// travels in the local server's own API: the request header
// Idempotency-Key, which the server confirms with the header
// Idempotent-Replayed. A server that does not answer it (the hosted
// platform, dispatch-py's mock server) ignored the key: DispatchKey then
// fails with an error wrapping [ErrKeysUnsupported] rather than let a
// retry start the calls twice.

// ErrKeyConflict is wrapped by the error of [Dispatch.DispatchKey] for a
// key that an earlier request, within the key's retention, used for
// other calls (other functions or inputs): nothing was started. Use
// another key for other calls.
var ErrKeyConflict = errors.New("dispatch: the idempotency key was used for other calls")

// ErrKeysUnsupported is wrapped by the error of [Dispatch.DispatchKey]
// when the Dispatch server ignored the key: it does not support
// idempotency keys (the hosted protocol has no field for them). The
// calls were started, once, and their ids are returned with the error;
// a retry would start them again.
var ErrKeysUnsupported = errors.New("dispatch: the Dispatch server does not support idempotency keys")

// DispatchKey is [Dispatch.Dispatch] once per key: the first request with
// key starts the calls and records key with their ids, durably and in the
// same transaction; a request with the same key within the key's
// retention (24 hours by default: server.Config.KeyRetention, `dispatch
// test --key-retention`) returns those ids, in order, and starts nothing,
// even when the first request's answer was lost, the server restarted,
// or many requests with the key arrive at once. After the retention the
// key is forgotten, and a request with it starts its calls again.
//
// One key names the whole list of calls of one request. A request with a
// key already used for other calls (other functions, inputs, versions or
// expirations, or another number of calls) fails with an error wrapping
// [ErrKeyConflict] and starts nothing; the calls' endpoints are not
// compared (a program in local mode listens on a new port at each run).
//
// A key is 1 to 255 bytes of printable ASCII without spaces (0x21 to
// 0x7E): an order number, a UUID, "user:42/checkout"; hash or encode other
// text. Keys are scoped to one Dispatch server (its store).
//
// Only the local server (embedded in local mode, or `dispatch test`)
// supports keys: the protocol has no field for them. With another server,
// DispatchKey fails with an error wrapping [ErrKeysUnsupported], and
// returns the ids of the calls it started anyway. With no calls it does
// nothing and records no key.
func (d *Dispatch) DispatchKey(ctx context.Context, key string, calls ...Caller) ([]string, error) {
	if err := localapi.CheckKey(key); err != nil {
		return nil, fmt.Errorf("dispatch: DispatchKey: %w", err)
	}
	if len(calls) == 0 {
		return nil, nil
	}
	return d.dispatch(ctx, key, calls)
}

// DispatchKey is [Function.Dispatch] once per key (see
// [Dispatch.DispatchKey]): the first call with key starts the function
// with in, and a call with the same key and input within the key's
// retention returns the first one's dispatch id and starts nothing.
//
//	id, err := PlaceOrder.DispatchKey(ctx, "order-"+order.ID, order)
func (f *Function[I, O]) DispatchKey(ctx context.Context, key string, in I) (string, error) {
	d, err := Default()
	if err != nil {
		return "", err
	}
	ids, err := d.DispatchKey(ctx, key, f.Call(in))
	if len(ids) == 0 {
		return "", err
	}
	return ids[0], err
}

// checkKeyHonoured checks that the server confirmed the key in its answer.
func (d *Dispatch) checkKeyHonoured(h http.Header, key string, ids []string) error {
	switch h.Get(localapi.HeaderReplayed) {
	case "true", "false":
		return nil
	}
	return fmt.Errorf("dispatch: the Dispatch server at %s does not support idempotency keys (the hosted protocol has no field for them): "+
		"it started the calls (%s) without recording the key %q, so a retry would start them again; "+
		"use the local server (local mode, or `dispatch test`) for DispatchKey, or keep the ids yourself: %w",
		d.cfg.apiURL, strings.Join(ids, ", "), key, ErrKeysUnsupported)
}

// keyConflict is the error of a key the server refused because an
// earlier request used it for other calls.
func keyConflict(err error) error {
	msg := err.Error()
	var ce *connect.Error
	if errors.As(err, &ce) {
		msg = ce.Message()
	}
	return &keyError{msg: msg, errs: []error{ErrKeyConflict, err}}
}

// keyError is an error with the server's message that wraps errs.
type keyError struct {
	msg  string
	errs []error
}

func (e *keyError) Error() string   { return e.msg }
func (e *keyError) Unwrap() []error { return e.errs }
