package dispatch

import (
	"context"
	"fmt"
	"os"

	"github.com/dispatchkit/dispatch/internal/localapi"
)

// Cancel cancels the call with dispatch id id and its whole tree of
// children, durably and at once, and reports whether it stopped the call:
// false, with no error, when the call was already finished (done, failed
// for good, expired, or cancelled before), which Cancel leaves as it is.
//
// Every call of the tree fails with status PERMANENT_ERROR (not retried)
// and an error of type "CANCELLED" that errors.Is matches with
// [ErrCanceled]: a Run request in flight has its context cancelled (the
// function sees ctx.Done(); what it answers is dropped), calls waiting to
// run, suspended or sleeping never run again. The parent of the cancelled
// call, when it is not a root, receives that error like any failed child,
// and its workflow can handle it (flow.Handle); [Dispatch.Wait] of a
// cancelled call returns it. The protocol has no cancel: Cancel needs the
// local server, embedded (local mode) or started with `dispatch test`. An
// id the server has no call for gives an error wrapping [ErrUnknownCall].
//
// In local mode Cancel asks the embedded server directly; otherwise it
// posts to the server's cancel route (POST
// /dispatch.local.v1/calls/{id}/cancel). The calls' error says who
// cancelled: "Dispatch.Cancel in <program> (pid N on HOST)".
func (d *Dispatch) Cancel(ctx context.Context, id string) (bool, error) {
	reason := cancelReason()
	var res *localapi.CancelResult
	var err error
	switch {
	case d.local != nil:
		res, err = d.local.Cancel(ctx, id, reason)
	case d.cfg.apiURL == "":
		return false, fmt.Errorf("dispatch: Cancel: no Dispatch server configured: set %s or pass WithAPIURL", EnvAPIURL)
	default:
		res, err = localapi.Cancel(ctx, d.cfg.httpClient, d.cfg.apiURL, d.cfg.apiKey, id, reason)
	}
	if err != nil {
		return false, fmt.Errorf("dispatch: cancelling call %s: %w", id, err)
	}
	return res.Calls > 0, nil
}

// cancelReason says who cancels, for the error of the cancelled calls.
func cancelReason() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "an unknown host"
	}
	return fmt.Sprintf("Dispatch.Cancel in %s (pid %d on %s)", programName(), os.Getpid(), host)
}
