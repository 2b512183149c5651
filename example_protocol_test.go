package dispatch_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"

	"buf.build/gen/go/stealthrocket/dispatch-proto/connectrpc/go/dispatch/sdk/v1/sdkv1connect"
	sdkv1 "buf.build/gen/go/stealthrocket/dispatch-proto/protocolbuffers/go/dispatch/sdk/v1"
	"connectrpc.com/connect"
	"github.com/dispatchkit/dispatch"
)

// grpcDispatch stands in for a Dispatch server that speaks gRPC only, such
// as the mock server of dispatch-py (python -m dispatch.test): it prints
// what it receives and answers an id per call.
type grpcDispatch struct {
	sdkv1connect.UnimplementedDispatchServiceHandler
}

func (grpcDispatch) Dispatch(ctx context.Context, req *connect.Request[sdkv1.DispatchRequest]) (*connect.Response[sdkv1.DispatchResponse], error) {
	fmt.Println("received over", req.Peer().Protocol, "with", req.Header().Get("Authorization"))
	res := &sdkv1.DispatchResponse{}
	for i, c := range req.Msg.GetCalls() {
		fmt.Println("call", c.GetFunction(), "at", c.GetEndpoint())
		res.DispatchIds = append(res.DispatchIds, fmt.Sprintf("%032x", i+1))
	}
	return connect.NewResponse(res), nil
}

// This example dispatches a call to a server that speaks gRPC only, over
// cleartext HTTP/2 (h2c). The client this package makes for ProtocolGRPC
// speaks h2c to http:// URLs by itself.
func ExampleWithProtocol() {
	_, h := sdkv1connect.NewDispatchServiceHandler(grpcDispatch{})
	srv := httptest.NewUnstartedServer(h)
	srv.Config.Protocols = new(http.Protocols)
	srv.Config.Protocols.SetUnencryptedHTTP2(true) // h2c only, as a grpcio server
	srv.Start()
	defer srv.Close()

	d, err := dispatch.New(
		dispatch.WithAPIURL(srv.URL),
		dispatch.WithAPIKey("test"),
		dispatch.WithEndpointURL("http://127.0.0.1:8000"),
		dispatch.WithProtocol(dispatch.ProtocolGRPC),
		dispatch.WithLogger(slog.New(slog.DiscardHandler)),
	)
	if err != nil {
		log.Fatal(err)
	}
	defer d.Close()

	ids, err := d.Dispatch(context.Background(), Greet.Call("Gopher"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("dispatch id", ids[0])
	// Output:
	// received over grpc with Bearer test
	// call example.greet at http://127.0.0.1:8000
	// dispatch id 00000000000000000000000000000001
}
