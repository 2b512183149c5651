package server_test

import (
	"context"
	"strings"
	"testing"

	sdkv1 "buf.build/gen/go/stealthrocket/dispatch-proto/protocolbuffers/go/dispatch/sdk/v1"
	"connectrpc.com/connect"
	"github.com/matryer/is"

	"github.com/dispatchkit/dispatch/internal/localapi"
)

// TestDispatchInProcess checks that DispatchInProcess answers what the
// HTTP handler answers, request by request (ids, or the same error code
// and text), and that the calls it records do not alias the caller's
// request.
func TestDispatchInProcess(t *testing.T) {
	tests := []struct {
		name    string
		key     string // the Authorization header's key
		header  map[string]string
		calls   func() []*sdkv1.Call
		code    connect.Code // 0: ids
		replays string       // the Replayed header of a keyed request
	}{
		{name: "ok", key: "test", calls: func() []*sdkv1.Call { return []*sdkv1.Call{call("echo", "a"), call("echo", "b")} }},
		{name: "no calls", key: "test", calls: func() []*sdkv1.Call { return nil }},
		{name: "wrong key", key: "nope", calls: func() []*sdkv1.Call { return []*sdkv1.Call{call("echo", "a")} }, code: connect.CodeUnauthenticated},
		{name: "invalid function name", key: "test", calls: func() []*sdkv1.Call { return []*sdkv1.Call{call("9bad name", "a")} }, code: connect.CodeInvalidArgument},
		{name: "function name over 256 bytes", key: "test", calls: func() []*sdkv1.Call { return []*sdkv1.Call{call(strings.Repeat("f", 300), "a")} }, code: connect.CodeInvalidArgument},
		{name: "endpoint not allowed", key: "test", calls: func() []*sdkv1.Call {
			return []*sdkv1.Call{{Function: "echo", Endpoint: "http://169.254.169.254"}}
		}, code: connect.CodeInvalidArgument},
		{name: "idempotency key", key: "test", header: map[string]string{localapi.HeaderKey: "k1"}, calls: func() []*sdkv1.Call { return []*sdkv1.Call{call("echo", "a")} }, replays: "false"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			type answer struct {
				n        int // ids
				code     connect.Code
				msg      string
				replayed string
			}
			send := func(inProcess bool) answer {
				b := setup(t)
				b.ep.handle("echo", echo)
				req := connect.NewRequest(&sdkv1.DispatchRequest{Calls: tt.calls()})
				req.Header().Set("Authorization", "Bearer "+tt.key)
				for k, v := range tt.header {
					req.Header().Set(k, v)
				}
				var res *connect.Response[sdkv1.DispatchResponse]
				var err error
				if inProcess {
					res, err = b.srv.DispatchInProcess(context.Background(), req)
				} else {
					res, err = b.client.Dispatch(context.Background(), req)
				}
				if err != nil {
					// Each send has a server of its own: the
					// endpoint's port differs.
					return answer{code: connect.CodeOf(err), msg: strings.ReplaceAll(err.Error(), b.ep.URL(), "<endpoint>")}
				}
				if inProcess && len(req.Msg.GetCalls()) > 0 {
					// The caller reuses its request: the server keeps
					// its own copy.
					req.Msg.Calls[0].Input = str("changed")
					got, err := b.srv.Result(context.Background(), res.Msg.GetDispatchIds()[0])
					is.NoErr(err)
					is.Equal(strOf(got.Result.GetOutput()), "a") // the input as dispatched
				}
				return answer{n: len(res.Msg.GetDispatchIds()), replayed: res.Header().Get(localapi.HeaderReplayed)}
			}
			in, overHTTP := send(true), send(false)
			is.Equal(in, overHTTP) // the same answer in process as over HTTP
			is.Equal(in.code, tt.code)
			is.Equal(in.replayed, tt.replays)
			if tt.code == 0 {
				is.Equal(in.n, len(tt.calls()))
			}
		})
	}
}
