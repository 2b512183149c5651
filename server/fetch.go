package server

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

// defaultFetchWait is the long-poll of one request of FetchResult when
// the caller gives none.
const defaultFetchWait = 30 * time.Second

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
func FetchResult(ctx context.Context, hc *http.Client, apiURL, apiKey, id string, wait time.Duration) (*Outcome, error) {
	if hc == nil {
		hc = http.DefaultClient
	}
	if wait <= 0 {
		wait = defaultFetchWait
	}
	wait = min(wait, maxResultWait)
	u := strings.TrimSuffix(apiURL, "/") + inspectPrefix + "calls/" + url.PathEscape(id) + "/result?wait=" + wait.String()
	for {
		start := time.Now()
		o, pending, err := fetchOnce(ctx, hc, u, apiURL, apiKey, id)
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
	data, err := io.ReadAll(io.LimitReader(res.Body, maxRequestBytes+1<<20))
	res.Body.Close()
	if err != nil {
		if ctx.Err() != nil {
			return nil, false, ctx.Err()
		}
		return nil, false, fmt.Errorf("server: reading the result of call %q from %s: %w", id, apiURL, err)
	}
	var body resultBody
	jsonErr := json.Unmarshal(data, &body)
	switch {
	case res.StatusCode == http.StatusAccepted && jsonErr == nil:
		return nil, true, nil
	case res.StatusCode == http.StatusNotFound && jsonErr == nil && body.Status == "unknown":
		return nil, false, &unknownCallError{id: id}
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
