package dispatch_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"

	"buf.build/gen/go/stealthrocket/dispatch-proto/connectrpc/go/dispatch/sdk/v1/sdkv1connect"
	sdkv1 "buf.build/gen/go/stealthrocket/dispatch-proto/protocolbuffers/go/dispatch/sdk/v1"
	"connectrpc.com/connect"
	"github.com/dispatchkit/dispatch"
	"github.com/dispatchkit/dispatch/serde"
)

// Greet is a plain function, registered under a stable name.
var Greet = dispatch.Func("example.greet", func(ctx context.Context, name string) (string, error) {
	if name == "" {
		return "", dispatch.Permanent(errors.New("greet: no name"))
	}
	return "Hello, " + name + "!", nil
})

// This example serves the registered functions under /app on an in-memory
// HTTP server and calls the endpoint the way Dispatch does. A function's
// failure is not an HTTP error: the run answers with its status.
//
// The instance is configured as for a local `dispatch test` server. Without
// a verification key, the endpoint accepts unsigned requests (New logs a
// warning, silenced here); in production, set DISPATCH_VERIFICATION_KEY.
func ExampleDispatch_Handler() {
	d, err := dispatch.New(
		dispatch.WithAPIURL("http://127.0.0.1:4450"),
		dispatch.WithAPIKey("test"),
		dispatch.WithLogger(slog.New(slog.DiscardHandler)),
	)
	if err != nil {
		log.Fatal(err)
	}
	defer d.Close()

	mux := http.NewServeMux()
	mux.Handle("/app/", d.Handler())
	srv := httptest.NewServer(mux)
	defer srv.Close()

	client := sdkv1connect.NewFunctionServiceClient(srv.Client(), srv.URL+"/app")
	for _, name := range []string{"Gopher", ""} {
		input, err := serde.Marshal(name)
		if err != nil {
			log.Fatal(err)
		}
		res, err := client.Run(context.Background(), connect.NewRequest(&sdkv1.RunRequest{
			Function:  Greet.Name(),
			Directive: &sdkv1.RunRequest_Input{Input: input},
		}))
		if err != nil {
			log.Fatal(err)
		}
		result := res.Msg.GetExit().GetResult()
		if res.Msg.GetStatus() != sdkv1.Status_STATUS_OK {
			fmt.Println(res.Msg.GetStatus(), result.GetError().GetMessage())
			continue
		}
		var greeting string
		if err := serde.Unmarshal(result.GetOutput(), &greeting); err != nil {
			log.Fatal(err)
		}
		fmt.Println(greeting)
	}
	// Output:
	// Hello, Gopher!
	// STATUS_PERMANENT_ERROR greet: no name
}
