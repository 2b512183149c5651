// Package localapi is the part of the local Dispatch server's own API
// (dispatch.local.v1, beside the protocol's DispatchService) that the SDK
// uses besides results (those are internal/callresult's): idempotency
// keys on DispatchService.Dispatch, and the cancel route with its client.
// It sits apart from package server so that the SDK reaches a server
// started by `dispatch test` without linking the server; package server
// serves both with these names and rules.
//
// # Idempotency keys
//
// The protocol's DispatchRequest has no field for an idempotency key, so
// the local server takes one in a request header, [HeaderKey]
// ("Idempotency-Key", the name of the IETF httpapi draft): one key per
// request, naming the request's list of calls. The server answers a
// request that carried one with [HeaderReplayed] ("Idempotent-Replayed:
// false" when it started the calls, "true" when it answered the ids of an
// earlier request with the key): a server that ignores the header (the
// hosted platform, dispatch-py's mock) answers without it, and the SDK
// fails rather than let a retry dispatch the calls twice.
//
// A key is 1 to [MaxKeyBytes] bytes of printable ASCII without spaces
// (0x21 to 0x7E): an order number, a UUID, "user:42/checkout". Its scope
// is one server (one store). See [CheckKey].
//
// # Cancel
//
// POST {apiURL}/dispatch.local.v1/calls/{id}/cancel, with the API key and
// an optional JSON body [CancelRequest], stops a call and its tree of
// children (see the server's documentation). It answers 200 with a
// [CancelBody]: status "cancelled" and the number of calls stopped, or
// "done" for a call already finished, which the cancel leaves as it is;
// 404 {"status":"unknown"} for an id the server has no call for. [Cancel]
// is its client.
package localapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/dispatchkit/dispatch/internal/callresult"
)

// HeaderKey is the request header of DispatchService.Dispatch that
// carries the idempotency key.
const HeaderKey = "Idempotency-Key"

// HeaderReplayed is the response header by which the server says it
// honoured the key: "false" when the request started its calls, "true"
// when it answered the ids of an earlier request with the same key.
const HeaderReplayed = "Idempotent-Replayed"

// MaxKeyBytes bounds the length of an idempotency key.
const MaxKeyBytes = 255

// DefaultKeyRetention is how long the server keeps a key by default.
const DefaultKeyRetention = 24 * time.Hour

// CheckKey says what is wrong with key, or returns nil. The error has no
// package prefix: callers say where the key came from.
func CheckKey(key string) error {
	if key == "" {
		return fmt.Errorf("the idempotency key is empty: give 1 to %d printable ASCII characters, such as an order number", MaxKeyBytes)
	}
	if len(key) > MaxKeyBytes {
		return fmt.Errorf("the idempotency key is %d bytes, at most %d: use a shorter one (a hash of a longer one, say)", len(key), MaxKeyBytes)
	}
	for i := 0; i < len(key); i++ {
		if b := key[i]; b < 0x21 || b > 0x7e {
			return fmt.Errorf("the idempotency key %q has the byte %#02x at %d: keys are printable ASCII without spaces (0x21 to 0x7E); encode other text (with base64 or a hash)", key, b, i)
		}
	}
	return nil
}

// MaxReasonBytes bounds the reason of a cancel.
const MaxReasonBytes = 1024

// CancelRoute is the pattern of the cancel route, below the server's URL.
const CancelRoute = "/dispatch.local.v1/calls/{id}/cancel"

// CancelPath returns the path of the cancel route for call id.
func CancelPath(id string) string {
	return strings.Replace(CancelRoute, "{id}", url.PathEscape(id), 1)
}

// CancelRequest is the optional JSON body of the cancel route.
type CancelRequest struct {
	// Reason says who cancelled, for the error the cancelled calls fail
	// with ("dispatch: call ... was cancelled by <reason>"); the server
	// says it was a request to its cancel route when it is empty. At
	// most MaxReasonBytes bytes of UTF-8.
	Reason string `json:"reason,omitempty"`
}

// CancelBody is the JSON answer of the cancel route.
type CancelBody struct {
	// Status is "cancelled" (the call and Calls-1 calls of its tree
	// were stopped), "done" (the call was already finished: nothing was
	// changed) or "unknown" (HTTP 404).
	Status string `json:"status"`
	// Calls is the number of calls stopped: the call and its live
	// descendants.
	Calls int `json:"calls,omitempty"`
	// Error says why a call is unknown.
	Error string `json:"error,omitempty"`
}

// CancelResult is what a cancel did.
type CancelResult struct {
	// Calls is the number of calls it stopped: the call and its live
	// descendants; 0 when the call was already finished (done, failed
	// or expired, or cancelled before).
	Calls int
}

// maxCancelAnswer bounds the answer read by Cancel.
const maxCancelAnswer = 64 << 10

// Cancel cancels call id on the local Dispatch server at apiURL
// (DISPATCH_API_URL), authenticating with apiKey (DISPATCH_API_KEY); reason
// says who cancels. hc nil means http.DefaultClient. An id the server does
// not know gives an error wrapping callresult.ErrUnknownCall. The errors
// are the server's answers and start with "server:", as callresult's do.
func Cancel(ctx context.Context, hc *http.Client, apiURL, apiKey, id, reason string) (*CancelResult, error) {
	if hc == nil {
		hc = http.DefaultClient
	}
	body, _ := json.Marshal(CancelRequest{Reason: reason})
	u := strings.TrimSuffix(apiURL, "/") + CancelPath(id)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("server: cancel: apiURL %q is not a URL like http://127.0.0.1:4450: %w", apiURL, err)
	}
	req.Header.Set("Authorization", "Bearer "+apiKey)
	req.Header.Set("Content-Type", "application/json")
	res, err := hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("server: cancelling call %q at %s: %w", id, apiURL, err)
	}
	data, err := io.ReadAll(io.LimitReader(res.Body, maxCancelAnswer))
	res.Body.Close()
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("server: reading the answer to the cancel of call %q from %s: %w", id, apiURL, err)
	}
	var cb CancelBody
	jsonErr := json.Unmarshal(data, &cb)
	switch {
	case res.StatusCode == http.StatusNotFound && jsonErr == nil && cb.Status == "unknown":
		return nil, callresult.UnknownCall(id)
	case res.StatusCode == http.StatusUnauthorized:
		return nil, fmt.Errorf("server: %s refused the API key: pass the server's key (DISPATCH_API_KEY): %s", apiURL, strings.TrimSpace(string(data)))
	case res.StatusCode == http.StatusNotFound || res.StatusCode == http.StatusMethodNotAllowed:
		return nil, fmt.Errorf("server: %s does not cancel calls (HTTP %d): cancelling needs a local Dispatch server (`dispatch test`, or local mode); the hosted protocol has no cancel", apiURL, res.StatusCode)
	case res.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("server: cancelling call %q at %s: HTTP %d: %s", id, apiURL, res.StatusCode, strings.TrimSpace(string(data)))
	case jsonErr != nil:
		return nil, fmt.Errorf("server: the answer to the cancel of call %q from %s is not JSON: %w", id, apiURL, jsonErr)
	}
	switch cb.Status {
	case "cancelled":
		return &CancelResult{Calls: cb.Calls}, nil
	case "done":
		return &CancelResult{}, nil
	}
	return nil, fmt.Errorf("server: the answer to the cancel of call %q from %s has an unknown status %q", id, apiURL, cb.Status)
}
