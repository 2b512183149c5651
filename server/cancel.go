package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"unicode/utf8"

	"github.com/dispatchkit/dispatch/internal/callresult"
	"github.com/dispatchkit/dispatch/internal/localapi"
	"github.com/dispatchkit/dispatch/internal/scheduler"
)

// CancelType is the Error.type of the error a cancelled call fails with
// (status PERMANENT_ERROR: the protocol has no CANCELLED status). The SDK's
// dispatch.ErrCanceled matches it with errors.Is.
const CancelType = scheduler.CancelType

// CancelResult is what [Server.Cancel] did.
//
// The SDK's client of the cancel route, which does not link this package,
// has a type of the same fields (internal/localapi); a CancelResult
// converts to it and back.
type CancelResult struct {
	// Calls is the number of calls stopped: the call and its live
	// descendants; 0 when the call was already finished (done, failed or
	// expired, or cancelled before), which the cancel leaves as it is.
	Calls int
}

// defaultCancelReason is who cancelled, when a request does not say.
const defaultCancelReason = "a request to the server's cancel route (POST /dispatch.local.v1/calls/{id}/cancel)"

// Cancel cancels the call with dispatch id id and its whole tree of
// children, durably, in one transaction, and returns once the change is
// stored (see "Cancel" in the package documentation). reason says who
// cancelled ("" for a default); it goes in the error of every cancelled
// call: "dispatch: call ID was cancelled by REASON".
//
// Cancelling a call that is already final changes nothing and is not an
// error: the result says 0 calls. An id the server has no call for gives
// an error wrapping [ErrUnknownCall]; a server that is not running, or
// whose store cannot write, an error saying so.
//
// On a replica (Config.Postgres), the call is cancelled by the engine of
// its partition: this replica's, or the owner's, to which the cancel is
// forwarded.
func (s *Server) Cancel(ctx context.Context, id, reason string) (CancelResult, error) {
	return s.cancel(ctx, id, reason, false)
}

// cancel is Cancel; forwarded says that another replica forwarded the
// request here, as the owner of the call's partition.
func (s *Server) cancel(ctx context.Context, id, reason string, forwarded bool) (CancelResult, error) {
	select {
	case <-s.stopping:
		return CancelResult{}, errNotRunning
	default:
	}
	if reason == "" {
		reason = defaultCancelReason
	}
	var n int
	var err error
	if s.cl != nil {
		n, err = s.cl.cancel(ctx, id, reason, forwarded)
	} else {
		n, err = s.engine.Cancel(ctx, id, reason)
	}
	var se *scheduler.StoreError
	switch {
	case err == nil:
		return CancelResult{Calls: n}, nil
	case errors.Is(err, scheduler.ErrUnknownCall):
		return CancelResult{}, callresult.UnknownCall(id)
	case errors.Is(err, scheduler.ErrClosed):
		return CancelResult{}, errNotRunning
	case errors.As(err, &se):
		return CancelResult{}, storeFailed(se)
	case errors.Is(err, errRetry):
		return CancelResult{}, err
	}
	return CancelResult{}, fmt.Errorf("server: %w", err)
}

// maxCancelBody bounds the body of a cancel request.
const maxCancelBody = 64 << 10

// serveCancel answers POST /dispatch.local.v1/calls/{id}/cancel.
func (s *Server) serveCancel(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	var req localapi.CancelRequest
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxCancelBody))
	if err != nil {
		http.Error(w, fmt.Sprintf("dispatch: reading the cancel request: %v (the body is at most %d bytes)", err, maxCancelBody), http.StatusBadRequest)
		return
	}
	if len(body) > 0 {
		if err := json.Unmarshal(body, &req); err != nil {
			http.Error(w, `dispatch: the body of a cancel request is JSON such as {"reason":"..."}, or empty: `+err.Error(), http.StatusBadRequest)
			return
		}
	}
	if len(req.Reason) > localapi.MaxReasonBytes || !utf8.ValidString(req.Reason) {
		http.Error(w, fmt.Sprintf("dispatch: the reason of a cancel is at most %d bytes of UTF-8", localapi.MaxReasonBytes), http.StatusBadRequest)
		return
	}
	res, err := s.cancel(r.Context(), id, req.Reason, r.Header.Get(headerForwarded) != "")
	switch {
	case err == nil:
	case errors.Is(err, ErrUnknownCall):
		writeJSONStatus(w, http.StatusNotFound, localapi.CancelBody{Status: "unknown", Error: err.Error()})
		return
	case errors.Is(err, errNotRunning), errors.Is(err, errRetry),
		s.engine != nil && s.engine.Err() != nil: // stopping, no owner now, or the store cannot write
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	case r.Context().Err() != nil:
		return // the client is gone
	default:
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	if res.Calls == 0 {
		writeJSONStatus(w, http.StatusOK, localapi.CancelBody{Status: "done"})
		return
	}
	writeJSONStatus(w, http.StatusOK, localapi.CancelBody{Status: "cancelled", Calls: res.Calls})
}
