package dispatch_test

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/dispatchkit/dispatch"
)

// A function steers the retries of its call by the error it returns: a
// marker says what to do, and other errors are classified.
func ExampleTemporary() {
	err := dispatch.Temporary(errors.New("db: connection lost"))
	fmt.Println(err)
	fmt.Println(dispatch.StatusOf(err), dispatch.StatusOf(err).Retried())

	err = dispatch.Permanent(fmt.Errorf("charge: %w", context.DeadlineExceeded))
	fmt.Println(dispatch.StatusOf(err), dispatch.StatusOf(err).Retried())
	// Output:
	// db: connection lost
	// TEMPORARY_ERROR true
	// PERMANENT_ERROR false
}

func ExampleStatusOf() {
	for _, err := range []error{
		nil,
		errors.New("invalid order"),
		fmt.Errorf("quota: %w", dispatch.ErrThrottled),
		fmt.Errorf("fetch: %w", context.DeadlineExceeded),
		&net.DNSError{Err: "no such host", Name: "example.invalid", IsNotFound: true},
		&net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")},
	} {
		fmt.Println(dispatch.StatusOf(err))
	}
	// Output:
	// OK
	// PERMANENT_ERROR
	// THROTTLED
	// TIMEOUT
	// DNS_ERROR
	// TCP_ERROR
}

func ExampleStatusOfHTTP() {
	for _, code := range []int{400, 404, 408, 429, 500, 501, 503} {
		s := dispatch.StatusOfHTTP(code)
		fmt.Println(code, s, s.Retried())
	}
	// Output:
	// 400 INVALID_ARGUMENT false
	// 404 NOT_FOUND false
	// 408 TIMEOUT true
	// 429 THROTTLED true
	// 500 TEMPORARY_ERROR true
	// 501 PERMANENT_ERROR false
	// 503 TEMPORARY_ERROR true
}
