package cli_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"buf.build/gen/go/stealthrocket/dispatch-proto/connectrpc/go/dispatch/sdk/v1/sdkv1connect"
	sdkv1 "buf.build/gen/go/stealthrocket/dispatch-proto/protocolbuffers/go/dispatch/sdk/v1"
	"connectrpc.com/connect"
	"github.com/matryer/is"
	"google.golang.org/protobuf/types/known/durationpb"
)

// sleepEndpoint answers "sleep" with a poll that waits an hour, and
// "tree" with a poll of two sleeps.
type sleepEndpoint struct{ srv *httptest.Server }

func newSleepEndpoint(t *testing.T) *sleepEndpoint {
	e := &sleepEndpoint{}
	path, h := sdkv1connect.NewFunctionServiceHandler(e)
	mux := http.NewServeMux()
	mux.Handle(path, h)
	e.srv = httptest.NewServer(mux)
	t.Cleanup(e.srv.Close)
	return e
}

func (e *sleepEndpoint) Run(ctx context.Context, req *connect.Request[sdkv1.RunRequest]) (*connect.Response[sdkv1.RunResponse], error) {
	p := &sdkv1.Poll{
		State:      &sdkv1.Poll_CoroutineState{CoroutineState: []byte("s")},
		MinResults: 1, MaxResults: 10, MaxWait: durationpb.New(time.Hour),
	}
	if req.Msg.GetFunction() == "tree" && req.Msg.GetInput() != nil {
		p.MinResults = 2
		p.Calls = []*sdkv1.Call{{CorrelationId: 1, Function: "sleep", Input: str("a")}, {CorrelationId: 2, Function: "sleep", Input: str("b")}}
	}
	return connect.NewResponse(&sdkv1.RunResponse{Status: sdkv1.Status_STATUS_OK, Directive: &sdkv1.RunResponse_Poll{Poll: p}}), nil
}

func TestCancelCommand(t *testing.T) {
	is := is.New(t)
	ep := newSleepEndpoint(t)
	addr, _, _, stop := runTest(t, ep.srv.URL, "--port", "0", "--memory", "--key-retention", "1h")
	api := "http://" + addr
	ids := dispatchCalls(t, addr, "test", []*sdkv1.Call{
		{Function: "sleep", Input: str("x")},
		{Function: "tree", Input: str("x")},
		{Function: "sleep", Input: str("y")},
	})

	out, errOut, code := run(t, "cancel", ids[0], "--api-url", api)
	is.Equal(errOut, "")
	is.Equal(code, 0)
	is.Equal(out, "cancelled "+ids[0]+"\n")
	o, err := fetchResult(t, addr, ids[0])
	is.NoErr(err)
	is.Equal(o.Status, sdkv1.Status_STATUS_PERMANENT_ERROR)
	is.Equal(o.Result.GetError().GetType(), "CANCELLED")
	is.True(strings.Contains(o.Result.GetError().GetMessage(), "was cancelled by dispatch cancel (")) // who

	// Already finished: nothing to do, and not an error.
	out, _, code = run(t, "cancel", ids[0], "--api-url", api)
	is.Equal(code, 0)
	is.Equal(out, ids[0]+" was already finished: nothing to cancel\n")
	out, _, code = run(t, "cancel", ids[0], "--api-url", api, "--json")
	is.Equal(code, 0)
	var body map[string]any
	is.NoErr(json.Unmarshal([]byte(out), &body))
	is.Equal(body["status"], "done")

	// A tree, once its children are made; the variables of the banner
	// are enough; a reason of one's own.
	waitFor(t, "the tree's children", func() bool {
		out, _, _ := run(t, "call", ids[1], "--api-url", api, "--json")
		return strings.Count(out, `"function": "sleep"`) == 2
	})
	t.Setenv("DISPATCH_API_URL", api)
	t.Setenv("DISPATCH_API_KEY", "test")
	out, errOut, code = run(t, "cancel", ids[1], "--reason", "the tree test")
	is.Equal(errOut, "")
	is.Equal(code, 0)
	is.Equal(out, "cancelled "+ids[1]+" and 2 calls of its tree\n")
	o, err = fetchResult(t, addr, ids[1])
	is.NoErr(err)
	is.Equal(o.Result.GetError().GetMessage(), "dispatch: call "+ids[1]+" was cancelled by the tree test")

	_, errOut, code = run(t, "cancel", "nope")
	is.Equal(code, 1)
	is.True(strings.Contains(errOut, `no call "nope" on the server at `+api))
	_, errOut, code = run(t, "cancel", ids[2], "--api-key", "wrong")
	is.Equal(code, 1)
	is.True(strings.Contains(errOut, "refused the API key"))
	_, errOut, code = run(t, "cancel", ids[2], "--api-url", "ftp://x")
	is.Equal(code, 2)
	is.True(strings.Contains(errOut, "--api-url"))
	_, errOut, code = run(t, "cancel")
	is.Equal(code, 2)
	is.True(strings.Contains(errOut, "cancel takes one dispatch id"))

	// --key-retention is the server's.
	client := sdkv1connect.NewDispatchServiceClient(http.DefaultClient, api)
	for i, in := range []string{"a", "b"} {
		req := connect.NewRequest(&sdkv1.DispatchRequest{Calls: []*sdkv1.Call{{Function: "sleep", Input: str(in)}}})
		req.Header().Set("Authorization", "Bearer test")
		req.Header().Set("Idempotency-Key", "k")
		_, err := client.Dispatch(context.Background(), req)
		if i == 0 {
			is.NoErr(err)
			continue
		}
		is.Equal(connect.CodeOf(err), connect.CodeAlreadyExists)
		is.True(strings.Contains(err.Error(), "for 1h0m0s (Config.KeyRetention, --key-retention of dispatch test)"))
	}
	is.Equal(stop(), 0)
}

func TestKeyRetentionFlag(t *testing.T) {
	is := is.New(t)
	_, errOut, code := run(t, "test", "http://127.0.0.1:1", "--memory", "--port", "0", "--key-retention", "-1h")
	is.Equal(code, 2)
	is.True(strings.Contains(errOut, "--key-retention -1h0m0s is negative"))
}
