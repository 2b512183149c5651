package dispatch_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"

	"github.com/dispatchkit/dispatch"
)

// watching says that Watch runs.
var watching = make(chan string, 1)

// Watch watches a feed until its call is cancelled.
var Watch = dispatch.Func("example.watch", func(ctx context.Context, feed string) (string, error) {
	watching <- feed
	<-ctx.Done() // the cancel ends the run's context
	return "", ctx.Err()
})

// Cancel stops a call and its whole tree of children; its result is an
// error that errors.Is matches with ErrCanceled. Cancelling a call that is
// finished changes nothing.
func ExampleDispatch_Cancel() {
	d, err := dispatch.New(dispatch.WithLocalServer(""), dispatch.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		log.Fatal(err)
	}
	defer d.Close()
	if err := d.Start(); err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()

	id, err := Watch.Dispatch(ctx, "prices")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("watching", <-watching)
	stopped, err := d.Cancel(ctx, id)
	fmt.Println("stopped:", stopped, err)
	_, err = Watch.Wait(ctx, id)
	fmt.Println("cancelled:", errors.Is(err, dispatch.ErrCanceled))
	stopped, err = d.Cancel(ctx, id) // finished now
	fmt.Println("stopped:", stopped, err)
	// Output:
	// watching prices
	// stopped: true <nil>
	// cancelled: true
	// stopped: false <nil>
}
