// Package callresult is the result route of the local Dispatch server,
// GET /dispatch.local.v1/calls/{id}/result?wait=30s: its wire form
// ([Body]), the [Outcome] it carries, and its client ([Fetch]).
//
// It sits apart from package server so that the SDK's Wait reaches a
// server started by `dispatch test` without linking the server (its
// scheduler, stores, SQLite and protovalidate). Package server serves the
// route with these types and re-exports them (server.Outcome,
// server.ErrUnknownCall, server.FetchResult). The errors are the server's
// answers and name it: they start with "server:", as they did when this
// client was server.FetchResult.
package callresult

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	sdkv1 "buf.build/gen/go/stealthrocket/dispatch-proto/protocolbuffers/go/dispatch/sdk/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// Path is where the route is served, below the server's URL, before the
// call's id: GET {apiURL}{Path}{id}/result.
const Path = "/dispatch.local.v1/calls/"

// MaxWait caps the wait parameter of the route.
const MaxWait = 60 * time.Second

// DefaultWait is the long-poll of one request of [Fetch] when the caller
// gives none.
const DefaultWait = 30 * time.Second

// maxBody bounds the answer read by Fetch: a result holds at most what a
// DispatchRequest may (16 MiB, the server's bound), plus its JSON.
const maxBody = 16<<20 + 1<<20

// Outcome is the final outcome of a call: done, failed for good, or
// expired.
type Outcome struct {
	// Status is the call's final status: OK, or why it failed
	// (STATUS_TIMEOUT for a call that expired).
	Status sdkv1.Status
	// Result carries the output or the error, the dispatch id and the
	// correlation id of the call.
	Result *sdkv1.CallResult
}

// ErrUnknownCall is wrapped by the error about a dispatch id the server
// has no call for (`server: no call "..."`).
var ErrUnknownCall = errors.New("server: unknown call")

// UnknownCall returns the error about id, which the server has no call
// for; it wraps [ErrUnknownCall].
func UnknownCall(id string) error { return &unknownCallError{id: id} }

type unknownCallError struct{ id string }

func (e *unknownCallError) Error() string { return fmt.Sprintf("server: no call %q", e.id) }
func (e *unknownCallError) Unwrap() error { return ErrUnknownCall }

// Body is the JSON of the route's answers.
type Body struct {
	// Status is the name of the final status ("STATUS_OK"), "pending"
	// (HTTP 202) or "unknown" (HTTP 404).
	Status string `json:"status"`
	// Result is the CallResult in protojson. When the output's type is not
	// known to the server (the CBOR values of the Go SDK, for one), the
	// output is left out here: ResultProto has it.
	Result json.RawMessage `json:"result,omitempty"`
	// ResultProto is the CallResult in binary protobuf (base64 in JSON),
	// exact whatever the output's type.
	ResultProto []byte `json:"result_proto,omitempty"`
	// Error says why a call is unknown.
	Error string `json:"error,omitempty"`
}

// Fetch waits for the final outcome of call id on the local Dispatch
// server at apiURL (DISPATCH_API_URL, as printed by `dispatch test`),
// authenticating with apiKey (DISPATCH_API_KEY). It long-polls the route,
// each request waiting up to wait on the server (0 means [DefaultWait];
// at most [MaxWait]), until the call is final or ctx ends (then it returns
// ctx.Err()). hc nil means http.DefaultClient.
//
// An id the server does not know gives an error wrapping
// [ErrUnknownCall]. The route is the local server's: the hosted platform
// does not serve it.
func Fetch(ctx context.Context, hc *http.Client, apiURL, apiKey, id string, wait time.Duration) (*Outcome, error) {
	if wait <= 0 {
		wait = DefaultWait
	}
	wait = min(wait, MaxWait)
	for {
		start := time.Now()
		o, pending, err := FetchOnce(ctx, hc, apiURL, apiKey, id, wait)
		if err != nil || !pending {
			return o, err
		}
		// A pending answer well before the wait is over (the server is
		// shutting down): pause before asking again rather than spin.
		if time.Since(start) < wait/2 {
			t := time.NewTimer(min(wait/2, 100*time.Millisecond))
			select {
			case <-ctx.Done():
				t.Stop()
				return nil, ctx.Err()
			case <-t.C:
			}
		}
	}
}

// FetchOnce asks the server at apiURL once for the outcome of call id,
// waiting up to wait on the server (0: not at all; at most [MaxWait]).
// pending is true, and o nil, when the call was not final within the wait
// (or the server is shutting down). hc nil means http.DefaultClient. The
// replicas of a server forward with it a Result of a call they cannot
// find to the owner of its partition: one request, which the owner
// answers from what it runs or stores.
func FetchOnce(ctx context.Context, hc *http.Client, apiURL, apiKey, id string, wait time.Duration) (o *Outcome, pending bool, err error) {
	if hc == nil {
		hc = http.DefaultClient
	}
	u := strings.TrimSuffix(apiURL, "/") + Path + url.PathEscape(id) + "/result"
	if wait = min(wait, MaxWait); wait > 0 {
		u += "?wait=" + wait.String()
	}
	return fetchOnce(ctx, hc, u, apiURL, apiKey, id)
}

func fetchOnce(ctx context.Context, hc *http.Client, u, apiURL, apiKey, id string) (o *Outcome, pending bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, false, fmt.Errorf("server: FetchResult: apiURL %q is not a URL like http://127.0.0.1:4450: %w", apiURL, err)
	}
	req.Header.Set("Authorization", "Bearer "+apiKey)
	res, err := hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, false, ctx.Err()
		}
		return nil, false, fmt.Errorf("server: fetching the result of call %q from %s: %w", id, apiURL, err)
	}
	data, err := io.ReadAll(io.LimitReader(res.Body, maxBody))
	res.Body.Close()
	if err != nil {
		if ctx.Err() != nil {
			return nil, false, ctx.Err()
		}
		return nil, false, fmt.Errorf("server: reading the result of call %q from %s: %w", id, apiURL, err)
	}
	var body Body
	jsonErr := json.Unmarshal(data, &body)
	switch {
	case res.StatusCode == http.StatusAccepted && jsonErr == nil:
		return nil, true, nil
	case res.StatusCode == http.StatusNotFound && jsonErr == nil && body.Status == "unknown":
		return nil, false, UnknownCall(id)
	case res.StatusCode == http.StatusUnauthorized:
		return nil, false, fmt.Errorf("server: %s refused the API key: pass the server's key (DISPATCH_API_KEY): %s", apiURL, strings.TrimSpace(string(data)))
	case res.StatusCode == http.StatusNotFound:
		return nil, false, fmt.Errorf("server: %s does not serve call results (HTTP 404): FetchResult needs a local Dispatch server (`dispatch test`)", apiURL)
	case res.StatusCode != http.StatusOK:
		return nil, false, fmt.Errorf("server: fetching the result of call %q from %s: HTTP %d: %s", id, apiURL, res.StatusCode, strings.TrimSpace(string(data)))
	case jsonErr != nil:
		return nil, false, fmt.Errorf("server: the result of call %q from %s is not JSON: %w", id, apiURL, jsonErr)
	}
	status, ok := sdkv1.Status_value[body.Status]
	if !ok {
		return nil, false, fmt.Errorf("server: the result of call %q has an unknown status %q", id, body.Status)
	}
	cr := new(sdkv1.CallResult)
	switch {
	case len(body.ResultProto) > 0:
		err = proto.Unmarshal(body.ResultProto, cr)
	case len(body.Result) > 0:
		err = protojson.UnmarshalOptions{DiscardUnknown: true}.Unmarshal(body.Result, cr)
	default:
		err = errors.New("no result")
	}
	if err != nil {
		return nil, false, fmt.Errorf("server: decoding the result of call %q: %w", id, err)
	}
	return &Outcome{Status: sdkv1.Status(status), Result: cr}, false, nil
}
