package server

import (
	"context"
	"net/http"
	"time"

	"github.com/dispatchkit/dispatch/internal/callresult"
)

// FetchResult waits for the final outcome of call id on the local Dispatch
// server at apiURL (DISPATCH_API_URL, as printed by `dispatch test`),
// authenticating with apiKey (DISPATCH_API_KEY). It long-polls
// GET {apiURL}/dispatch.local.v1/calls/{id}/result, each request waiting
// up to wait on the server (0 means 30 s; at most 60 s), until the call is
// final or ctx ends (then it returns ctx.Err()). hc nil means
// http.DefaultClient.
//
// An id the server does not know gives an error wrapping [ErrUnknownCall].
// This route is the local server's: the hosted platform does not serve it.
//
// The client lives in an internal package of its own, which the SDK's
// Dispatch.Wait uses too without linking this package.
func FetchResult(ctx context.Context, hc *http.Client, apiURL, apiKey, id string, wait time.Duration) (*Outcome, error) {
	o, err := callresult.Fetch(ctx, hc, apiURL, apiKey, id, wait)
	return (*Outcome)(o), err
}
