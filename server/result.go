package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	sdkv1 "buf.build/gen/go/stealthrocket/dispatch-proto/protocolbuffers/go/dispatch/sdk/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/dispatchkit/dispatch/internal/callresult"
	"github.com/dispatchkit/dispatch/internal/scheduler"
	"github.com/dispatchkit/dispatch/internal/store"
)

// ErrUnknownCall is wrapped by the error about a dispatch id the server
// has no call for (`server: no call "..."`).
var ErrUnknownCall = callresult.ErrUnknownCall

// errNotRunning is the answer to Result on a server that is not started,
// or is shutting down.
var errNotRunning = errors.New("server: not running: start the server with Start before asking for results, and ask before Close")

// errPending is the answer of result(wait=false) for a call not final yet.
var errPending = errors.New("server: the call is not finished")

// Outcome is the final outcome of a call: done, failed for good, or
// expired.
//
// The SDK's client of the result route, which does not link this package,
// has a type of the same fields (internal/callresult); a *Outcome converts
// to it and back.
type Outcome struct {
	// Status is the call's final status: OK, or why it failed
	// (STATUS_TIMEOUT for a call that expired).
	Status sdkv1.Status
	// Result carries the output or the error, the dispatch id and the
	// correlation id of the call.
	Result *sdkv1.CallResult
}

// Result waits until the call with dispatch id id is final and returns
// its outcome; it returns at once if the call is already final. It works
// for any call the server knows, root or child. The wait is woken by the
// engine when the outcome is durable, not by polling; on a replica
// (Config.Postgres) that does not run the call, the call's row is read
// instead, again every 10 ms to 250 ms until it is final, and a call
// without a row yet (a child started early, its creation not durable) is
// asked of the owner of its id's partition, whose watch wakes the wait.
//
// It returns ctx.Err() if ctx ends first, an error wrapping
// [ErrUnknownCall] for an id the server has no call for, and an error if
// the server is not running (before Start, during and after Shutdown).
func (s *Server) Result(ctx context.Context, id string) (*Outcome, error) {
	return s.result(ctx, id, true, false)
}

// result is Result; without wait, it answers errPending at once for a
// call that is not final. forwarded says that another replica forwarded
// the request here, as the owner of the call's partition.
func (s *Server) result(ctx context.Context, id string, wait, forwarded bool) (*Outcome, error) {
	select {
	case <-s.stopping:
		return nil, errNotRunning
	default:
	}
	if s.cl != nil {
		return s.cl.result(ctx, id, wait, forwarded)
	}
	w, err := s.engine.Watch(id)
	if errors.Is(err, scheduler.ErrClosed) {
		return nil, errNotRunning
	}
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	if w == nil {
		return s.stored(ctx, id)
	}
	if !wait {
		w.Stop()
		return nil, errPending
	}
	err = await(ctx, s.stopping, w.Done())
	w.Stop()
	if err != nil {
		return nil, err
	}
	row, err := w.Outcome()
	if err != nil {
		return nil, fmt.Errorf("server: the outcome of call %q cannot be stored: %w; after the server restarts, the call resumes from what was stored (a call made by a workflow step that was not stored yet is made again, under a new id, and this id is then not found)", id, err)
	}
	return outcomeOf(row)
}

// await waits until done fires, ctx ends (its error) or the server stops
// (errNotRunning; stopping is closed before the engines close, which do
// not end their watches). done is a watch's Done or a timer's C.
func await[T any](ctx context.Context, stopping <-chan struct{}, done <-chan T) error {
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-stopping:
		return errNotRunning
	}
}

// stored reads the outcome of a call that the engine no longer runs. The
// read is not cancelled with ctx: the outcome is there, and a caller whose
// context just ended still gets it.
func (s *Server) stored(ctx context.Context, id string) (*Outcome, error) {
	row, err := s.store.GetCall(context.WithoutCancel(ctx), id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, callresult.UnknownCall(id)
	}
	if err != nil {
		return nil, fmt.Errorf("server: reading call %q: %w", id, err)
	}
	if row.State != store.Done {
		// The engine runs every live call of the store; a live row it does
		// not know means the outcome could not be stored (the log says why).
		return nil, fmt.Errorf("server: call %q is not finished in the store, yet not running: its outcome could not be stored; see the server's log", id)
	}
	return outcomeOf(row)
}

func outcomeOf(row *store.Call) (*Outcome, error) {
	res := &sdkv1.CallResult{CorrelationId: row.CorrelationID, DispatchId: row.ID}
	if len(row.Output) > 0 {
		res.Output = new(anypb.Any)
		if err := proto.Unmarshal(row.Output, res.Output); err != nil {
			return nil, fmt.Errorf("server: decoding the output of call %q: %w", row.ID, err)
		}
	}
	if len(row.Error) > 0 {
		res.Error = new(sdkv1.Error)
		if err := proto.Unmarshal(row.Error, res.Error); err != nil {
			return nil, fmt.Errorf("server: decoding the error of call %q: %w", row.ID, err)
		}
	}
	status := sdkv1.Status(row.Status)
	if status == sdkv1.Status_STATUS_UNSPECIFIED {
		status = sdkv1.Status_STATUS_OK
	}
	return &Outcome{Status: status, Result: res}, nil
}

// maxResultWait caps the wait parameter of the result route.
const maxResultWait = callresult.MaxWait

// resultBody is the JSON of GET /dispatch.local.v1/calls/{id}/result: its
// Status is the name of the final status ("STATUS_OK"), "pending" (HTTP
// 202) or "unknown" (HTTP 404); Result the CallResult in protojson, without
// its output when the output's type is not known to the server (the CBOR
// values of the Go SDK, for one); ResultProto the CallResult in binary
// protobuf (base64 in JSON), exact whatever the output's type; Error why a
// call is unknown.
type resultBody = callresult.Body

// serveResult answers GET /dispatch.local.v1/calls/{id}/result?wait=30s.
func (s *Server) serveResult(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	var wait time.Duration
	if v := r.URL.Query().Get("wait"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			http.Error(w, fmt.Sprintf("dispatch: wait=%q is not a duration such as 30s or 500ms (at most %v)", v, maxResultWait), http.StatusBadRequest)
			return
		}
		wait = min(d, maxResultWait)
	}
	ctx := r.Context()
	forwarded := r.Header.Get(headerForwarded) != ""
	var o *Outcome
	var err error
	if wait > 0 {
		wctx, cancel := context.WithTimeout(ctx, wait)
		o, err = s.result(wctx, id, true, forwarded)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			err = errPending
		}
	} else {
		o, err = s.result(ctx, id, false, forwarded)
	}
	switch {
	case err == nil:
	case errors.Is(err, errPending), errors.Is(err, errNotRunning):
		// Shutting down counts as pending: the call is not final, and a
		// client that asks again learns that the server is gone.
		writeJSONStatus(w, http.StatusAccepted, resultBody{Status: "pending"})
		return
	case errors.Is(err, ErrUnknownCall):
		writeJSONStatus(w, http.StatusNotFound, resultBody{Status: "unknown", Error: err.Error()})
		return
	case errors.As(err, new(*scheduler.StoreError)), errors.Is(err, errRetry):
		// The store cannot write, or the owner of the call's partition
		// could not be reached: the client retries.
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	case ctx.Err() != nil:
		return // the client is gone
	default:
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	body := resultBody{Status: o.Status.String()}
	body.ResultProto, err = proto.Marshal(o.Result)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	if js, err := protojson.Marshal(o.Result); err == nil {
		body.Result = js
	} else {
		noOutput := proto.Clone(o.Result).(*sdkv1.CallResult)
		noOutput.Output = nil
		body.Result, _ = protojson.Marshal(noOutput)
	}
	writeJSONStatus(w, http.StatusOK, body)
}

func writeJSONStatus(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}
