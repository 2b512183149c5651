package dispatcherr_test

import (
	"errors"
	"fmt"
	"go/build"
	"strings"
	"testing"

	sdkv1 "buf.build/gen/go/stealthrocket/dispatch-proto/protocolbuffers/go/dispatch/sdk/v1"
	"github.com/matryer/is"

	"github.com/dispatchkit/dispatch/dispatcherr"
)

func TestStatusTable(t *testing.T) {
	t.Parallel()
	tests := []struct {
		status  dispatcherr.Status
		number  int32
		name    string
		retried bool
	}{
		{dispatcherr.StatusOK, 1, "OK", false},
		{dispatcherr.StatusTimeout, 2, "TIMEOUT", true},
		{dispatcherr.StatusThrottled, 3, "THROTTLED", true},
		{dispatcherr.StatusInvalidArgument, 4, "INVALID_ARGUMENT", false},
		{dispatcherr.StatusInvalidResponse, 5, "INVALID_RESPONSE", false},
		{dispatcherr.StatusTemporaryError, 6, "TEMPORARY_ERROR", true},
		{dispatcherr.StatusPermanentError, 7, "PERMANENT_ERROR", false},
		{dispatcherr.StatusIncompatibleState, 8, "INCOMPATIBLE_STATE", false}, // restarted, not retried
		{dispatcherr.StatusDNSError, 9, "DNS_ERROR", true},
		{dispatcherr.StatusTCPError, 10, "TCP_ERROR", true},
		{dispatcherr.StatusTLSError, 11, "TLS_ERROR", true},
		{dispatcherr.StatusHTTPError, 12, "HTTP_ERROR", true},
		{dispatcherr.StatusUnauthenticated, 13, "UNAUTHENTICATED", false},
		{dispatcherr.StatusPermissionDenied, 14, "PERMISSION_DENIED", false},
		{dispatcherr.StatusNotFound, 15, "NOT_FOUND", false},
	}
	is := is.New(t)
	is.Equal(len(tests), len(sdkv1.Status_name)-1) // every protocol status but UNSPECIFIED
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			is.Equal(int32(tt.status), tt.number)
			is.Equal(tt.status.String(), tt.name)
			is.Equal(tt.status.Proto(), sdkv1.Status(tt.number))
			is.Equal("STATUS_"+tt.status.String(), tt.status.Proto().String()) // same names as the protocol
			is.Equal(tt.status.Retried(), tt.retried)
		})
	}
}

func TestStatusStringUnknown(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	is.Equal(dispatcherr.Status(0).String(), "Status(0)")
	is.Equal(dispatcherr.Status(99).String(), "Status(99)")
	is.True(!dispatcherr.Status(99).Retried())
}

// TestError checks the message of an Error and the sentinel it matches: the
// one of its status, PERMANENT_ERROR's when its Status is not a failure.
func TestError(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		err   *dispatcherr.Error
		msg   string
		is    error
		isNot error
	}{
		{"status, type and message", &dispatcherr.Error{Status: dispatcherr.StatusTemporaryError, Type: "*myapp.NotReady", Message: "not ready yet"}, "TEMPORARY_ERROR: *myapp.NotReady: not ready yet", dispatcherr.ErrTemporary, dispatcherr.ErrPermanent},
		{"no type", &dispatcherr.Error{Status: dispatcherr.StatusNotFound, Message: "gone"}, "NOT_FOUND: gone", dispatcherr.ErrNotFound, dispatcherr.ErrTimeout},
		{"timeout", &dispatcherr.Error{Status: dispatcherr.StatusTimeout}, "TIMEOUT", dispatcherr.ErrTimeout, dispatcherr.ErrThrottled},
		{"OK is no failure", &dispatcherr.Error{Status: dispatcherr.StatusOK, Message: "odd"}, "PERMANENT_ERROR: odd", dispatcherr.ErrPermanent, nil},
		{"zero status", &dispatcherr.Error{}, "PERMANENT_ERROR", dispatcherr.ErrPermanent, nil},
		{"unknown status", &dispatcherr.Error{Status: 99}, "PERMANENT_ERROR", dispatcherr.ErrPermanent, nil},
		{"nil", nil, "PERMANENT_ERROR", dispatcherr.ErrPermanent, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			is.Equal(tt.err.Error(), tt.msg)
			is.True(errors.Is(tt.err, tt.is))            // the sentinel of its status
			is.True(!errors.Is(tt.err, errors.New("x"))) // not any error
			if tt.isNot != nil {
				is.True(!errors.Is(tt.err, tt.isNot)) // not another status's
			}
			is.Equal(tt.err.Unwrap(), nil) // nothing rebuilt: made here, not off the wire
		})
	}
}

// TestSentinels checks that each failure status has exactly one sentinel
// among the ErrX values, whose message starts with "dispatch: ".
func TestSentinels(t *testing.T) {
	t.Parallel()
	sentinels := []error{
		dispatcherr.ErrTimeout, dispatcherr.ErrThrottled, dispatcherr.ErrInvalidArgument,
		dispatcherr.ErrInvalidResponse, dispatcherr.ErrTemporary, dispatcherr.ErrPermanent,
		dispatcherr.ErrIncompatibleState, dispatcherr.ErrDNS, dispatcherr.ErrTCP, dispatcherr.ErrTLS,
		dispatcherr.ErrHTTP, dispatcherr.ErrUnauthenticated, dispatcherr.ErrPermissionDenied, dispatcherr.ErrNotFound,
	}
	is := is.New(t)
	for s := dispatcherr.StatusTimeout; s <= dispatcherr.StatusNotFound; s++ {
		var matched []error
		for _, e := range sentinels {
			if errors.Is(&dispatcherr.Error{Status: s}, e) {
				matched = append(matched, e)
			}
		}
		is.Equal(len(matched), 1) // one sentinel per failure status
		is.True(len(matched[0].Error()) > len("dispatch: "))
		is.Equal(matched[0].Error()[:len("dispatch: ")], "dispatch: ")
	}
}

// ErrCanceled matches by type, not by status: a cancelled call's error
// (PERMANENT_ERROR, type CANCELLED) and nothing else.
func TestErrCanceled(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"a cancelled call", &dispatcherr.Error{Status: dispatcherr.StatusPermanentError, Type: "CANCELLED", Message: "dispatch: call x was cancelled by me"}, true},
		{"wrapped", fmt.Errorf("charge: %w", &dispatcherr.Error{Status: dispatcherr.StatusPermanentError, Type: dispatcherr.CanceledType}), true},
		{"whatever its status", &dispatcherr.Error{Type: "CANCELLED"}, true},
		{"itself", dispatcherr.ErrCanceled, true},
		{"another permanent error", &dispatcherr.Error{Status: dispatcherr.StatusPermanentError, Type: "*errors.errorString"}, false},
		{"a timeout", dispatcherr.ErrTimeout, false},
		{"a nil Error", (*dispatcherr.Error)(nil), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			is.Equal(errors.Is(tt.err, dispatcherr.ErrCanceled), tt.want)
		})
	}
	is := is.New(t)
	e := &dispatcherr.Error{Status: dispatcherr.StatusPermanentError, Type: "CANCELLED"}
	is.True(errors.Is(e, dispatcherr.ErrPermanent)) // its status too
	is.Equal(dispatcherr.ErrCanceled.Error(), "dispatch: cancelled")
}

func TestPanicAndHTTPErrors(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	tests := []struct {
		name   string
		err    error
		msg    string
		unwrap error
	}{
		{"panic with a value", &dispatcherr.PanicError{Value: 42}, "panic: 42", nil},
		{"panic with an error", &dispatcherr.PanicError{Value: boom}, "panic: boom", boom},
		{"HTTP, request known", &dispatcherr.HTTPStatusError{Method: "POST", URL: "https://example.com/orders", Code: 503, Status: "503 Service Unavailable"}, "POST https://example.com/orders: 503 Service Unavailable", nil},
		{"HTTP, URL only", &dispatcherr.HTTPStatusError{URL: "https://example.com", Code: 404}, "https://example.com: 404 Not Found", nil},
		{"HTTP, code only", &dispatcherr.HTTPStatusError{Code: 599}, "HTTP 599", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			is.Equal(tt.err.Error(), tt.msg)
			is.Equal(errors.Unwrap(tt.err), tt.unwrap)
		})
	}
}

// A continuation, or a caller of dispatch.Wait, tells failures apart by
// their status.
func ExampleError() {
	var err error = fmt.Errorf("charge: %w", &dispatcherr.Error{Status: dispatcherr.StatusNotFound, Type: "*shop.UnknownCard", Message: "no card 42"})

	var e *dispatcherr.Error
	if errors.As(err, &e) {
		fmt.Println(e.Status, e.Type, e.Message, e.Status.Retried())
	}
	fmt.Println(errors.Is(err, dispatcherr.ErrNotFound), errors.Is(err, dispatcherr.ErrTimeout))
	// Output:
	// NOT_FOUND *shop.UnknownCard no card 42 false
	// true false
}

// TestLeaf checks that the package stays a leaf of types: besides the
// standard library and the protocol's generated types, it imports only the
// bridge that gives internal/status its unexported parts, so that any
// package of the SDK can import it without a cycle.
func TestLeaf(t *testing.T) {
	t.Parallel()
	p, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatalf("reading the imports of dispatcherr: %v", err)
	}
	if len(p.Imports) == 0 {
		t.Fatal("dispatcherr has no imports: the walk did not read it")
	}
	for _, imp := range p.Imports {
		switch {
		case imp == "github.com/dispatchkit/dispatch/internal/errbridge":
		case strings.HasPrefix(imp, "buf.build/gen/go/stealthrocket/dispatch-proto/"):
		case !strings.Contains(strings.Split(imp, "/")[0], "."): // the standard library
		default:
			t.Errorf("dispatcherr imports %s: it must stay a leaf of types", imp)
		}
	}
}
