package dispatch_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"

	"github.com/dispatchkit/dispatch"
)

// Halve halves even numbers, and refuses odd ones.
var Halve = dispatch.Func("example.halve", func(ctx context.Context, n int) (int, error) {
	if n%2 != 0 {
		return 0, dispatch.Permanent(fmt.Errorf("halve: %d is odd", n))
	}
	return n / 2, nil
})

// A call's result is waited for by its id, decoded into the function's
// result type; a failed call gives its error.
func ExampleFunction_Wait() {
	d, err := dispatch.New(dispatch.WithLocalServer(""), dispatch.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		log.Fatal(err)
	}
	defer d.Close()
	if err := d.Start(); err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()

	id, err := Halve.Dispatch(ctx, 84)
	if err != nil {
		log.Fatal(err)
	}
	n, err := Halve.Wait(ctx, id) // an int, from this run or an id kept from an earlier one
	fmt.Println(n, err)

	id, err = Halve.Dispatch(ctx, 7)
	if err != nil {
		log.Fatal(err)
	}
	_, err = Halve.Wait(ctx, id)
	var e *dispatch.Error
	fmt.Println(errors.As(err, &e), e.Status, e.Message)
	// Output:
	// 42 <nil>
	// true PERMANENT_ERROR halve: 7 is odd
}

// A batch is waited for at once, without a goroutine per call: each
// result comes with its value or its error, in the order of the ids.
func ExampleFunction_WaitAll() {
	d, err := dispatch.New(dispatch.WithLocalServer(""), dispatch.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		log.Fatal(err)
	}
	defer d.Close()
	if err := d.Start(); err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()

	ids, err := Halve.DispatchAll(ctx, 10, 3, 64)
	if err != nil {
		log.Fatal(err)
	}
	results, err := Halve.WaitAll(ctx, ids...)
	if err != nil {
		log.Fatal(err) // the waiting failed, not a call
	}
	for _, r := range results {
		if r.Err != nil {
			fmt.Println("failed:", errors.Is(r.Err, dispatch.ErrPermanent))
			continue
		}
		fmt.Println(r.Value)
	}
	// Output:
	// 5
	// failed: true
	// 32
}
