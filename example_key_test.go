package dispatch_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"

	"github.com/dispatchkit/dispatch"
)

// Charge charges an order, which must happen once.
var Charge = dispatch.Func("example.charge", func(ctx context.Context, order string) (string, error) {
	return "charged " + order, nil
})

// A program that may crash after dispatching, and dispatches again when it
// restarts, names the request with a key of its own: the same key starts
// the call once, and gives the first call's id to every later request.
// The key travels in the local server's own API (the hosted protocol has
// no field for it); this example runs one in-process (local mode).
func ExampleFunction_DispatchKey() {
	d, err := dispatch.New(dispatch.WithLocalServer(""), dispatch.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		log.Fatal(err)
	}
	defer d.Close()
	if err := d.Start(); err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()

	first, err := Charge.DispatchKey(ctx, "order-42", "order 42")
	if err != nil {
		log.Fatal(err)
	}
	again, err := Charge.DispatchKey(ctx, "order-42", "order 42") // a retry: nothing starts
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("same call:", again == first)

	receipt, err := Charge.Wait(ctx, first)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(receipt)

	// The key names that call: other calls with it are refused.
	_, err = Charge.DispatchKey(ctx, "order-42", "order 43")
	fmt.Println("conflict:", errors.Is(err, dispatch.ErrKeyConflict))
	// Output:
	// same call: true
	// charged order 42
	// conflict: true
}
