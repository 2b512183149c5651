package status_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	sdkv1 "buf.build/gen/go/stealthrocket/dispatch-proto/protocolbuffers/go/dispatch/sdk/v1"
	"github.com/matryer/is"
	"google.golang.org/protobuf/proto"

	"github.com/dispatchkit/dispatch/dispatcherr"
	"github.com/dispatchkit/dispatch/internal/status"
)

// notReady is not registered: it crosses the wire as text.
type notReady struct{ Order string }

func (e *notReady) Error() string { return "order " + e.Order + " not ready yet" }

// quotaError is registered under a pointer type.
type quotaError struct {
	Limit, Used int
	note        string // unexported: does not travel
}

func (e *quotaError) Error() string {
	return fmt.Sprintf("quota exceeded: %d of %d%s", e.Used, e.Limit, e.note)
}

// codeError is registered as a value type.
type codeError struct{ Code string }

func (e codeError) Error() string { return "code " + e.Code }

// chanError is registered but cannot be encoded.
type chanError struct{ C chan int }

func (e *chanError) Error() string { return "chan error" }

func init() {
	status.RegisterError[*quotaError]("statustest.QuotaError")
	status.RegisterError[codeError]("statustest.CodeError")
	status.RegisterError[*chanError]("statustest.ChanError")
}

// overTheWire encodes e as protobuf and decodes it, as between two programs.
func overTheWire(t *testing.T, e *sdkv1.Error) *sdkv1.Error {
	t.Helper()
	if e == nil {
		return nil
	}
	b, err := proto.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	out := new(sdkv1.Error)
	if err := proto.Unmarshal(b, out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestToProtoNil(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	s, e := status.ToProto(nil)
	is.Equal(s, sdkv1.Status_STATUS_OK)
	is.True(e == nil)
	is.True(status.FromProto(sdkv1.Status_STATUS_OK, nil) == nil)
	is.True(status.FromProto(sdkv1.Status_STATUS_UNSPECIFIED, nil) == nil)
}

func TestProtoRoundTrip(t *testing.T) {
	t.Parallel()
	child := status.FromProto(sdkv1.Status_STATUS_NOT_FOUND, &sdkv1.Error{
		Type: "*warehouse.Missing", Message: "no order o-1", Traceback: []byte("goroutine 1 [running]:\nwarehouse.find()"),
	})
	tests := []struct {
		name      string
		err       error
		status    status.Status
		typ       string
		message   string
		traceback bool   // a traceback is sent
		text      string // Error() of the decoded error
	}{
		{
			name:    "marked user error",
			err:     status.MarkTemporary(&notReady{Order: "o-1"}),
			status:  status.TemporaryError,
			typ:     "*status_test.notReady",
			message: "order o-1 not ready yet",
			text:    "TEMPORARY_ERROR: *status_test.notReady: order o-1 not ready yet",
		},
		{
			name:    "wrapped plain error",
			err:     fmt.Errorf("charge card: %w", errors.New("declined")),
			status:  status.PermanentError,
			typ:     "", // errors.New says nothing its message does not
			message: "charge card: declined",
			text:    "PERMANENT_ERROR: charge card: declined",
		},
		{
			name:    "marker under wrapper",
			err:     fmt.Errorf("step 2: %w", status.MarkThrottled(&notReady{Order: "o-2"})),
			status:  status.Throttled,
			typ:     "*status_test.notReady",
			message: "step 2: order o-2 not ready yet",
			text:    "THROTTLED: *status_test.notReady: step 2: order o-2 not ready yet",
		},
		{
			name:    "joined errors",
			err:     errors.Join(&notReady{Order: "a"}, errors.New("b")),
			status:  status.PermanentError,
			typ:     "*status_test.notReady",
			message: "order a not ready yet\nb",
			text:    "PERMANENT_ERROR: *status_test.notReady: order a not ready yet\nb",
		},
		{
			name:      "panic",
			err:       status.CatchPanic(func() error { panic("boom") }),
			status:    status.PermanentError,
			typ:       "dispatch.PanicError",
			message:   "panic: boom",
			traceback: true,
			text:      "PERMANENT_ERROR: dispatch.PanicError: panic: boom",
		},
		{
			name:      "forwarded child error",
			err:       child,
			status:    status.NotFound,
			typ:       "*warehouse.Missing",
			message:   "no order o-1", // not "NOT_FOUND: ...": prefixes do not pile up
			traceback: true,
			text:      "NOT_FOUND: *warehouse.Missing: no order o-1",
		},
		{
			name:      "wrapped child error",
			err:       fmt.Errorf("lookup: %w", child),
			status:    status.NotFound,
			typ:       "*warehouse.Missing",
			message:   "lookup: NOT_FOUND: *warehouse.Missing: no order o-1",
			traceback: true,
			text:      "NOT_FOUND: *warehouse.Missing: lookup: NOT_FOUND: *warehouse.Missing: no order o-1",
		},
		{
			name:    "sentinel",
			err:     fmt.Errorf("quota of 10 reached: %w", status.ErrThrottled),
			status:  status.Throttled,
			typ:     "dispatch.ErrThrottled",
			message: "quota of 10 reached: dispatch: throttled",
			text:    "THROTTLED: dispatch.ErrThrottled: quota of 10 reached: dispatch: throttled",
		},
		{
			name:    "registered type",
			err:     status.MarkThrottled(&quotaError{Limit: 10, Used: 12}),
			status:  status.Throttled,
			typ:     "statustest.QuotaError",
			message: "quota exceeded: 12 of 10",
			text:    "THROTTLED: statustest.QuotaError: quota exceeded: 12 of 10",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			s, pe := status.ToProto(tt.err)
			is.Equal(status.Status(s), tt.status)
			is.Equal(pe.GetType(), tt.typ)
			is.Equal(pe.GetMessage(), tt.message)
			is.Equal(len(pe.GetTraceback()) > 0, tt.traceback)

			got := status.FromProto(s, overTheWire(t, pe))
			is.Equal(got.Status, tt.status)
			is.Equal(got.Type, tt.typ)
			is.Equal(got.Message, tt.message)
			is.Equal(got.Traceback, pe.GetTraceback())
			is.Equal(got.Error(), tt.text)
			is.Equal(status.Of(got), tt.status) // returning it keeps the status

			// Returned again, as is, it produces the same wire error.
			s2, pe2 := status.ToProto(got)
			is.Equal(s2, s)
			is.True(proto.Equal(pe2, pe))
		})
	}
}

func TestRegisteredErrorRoundTrip(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	err := fmt.Errorf("charge: %w", status.MarkThrottled(&quotaError{Limit: 10, Used: 12, note: " (local)"}))
	s, pe := status.ToProto(err)
	is.Equal(pe.GetType(), "statustest.QuotaError")
	is.True(len(pe.GetValue()) > 0)
	is.Equal(pe.GetMessage(), "charge: quota exceeded: 12 of 10 (local)")

	got := status.FromProto(s, overTheWire(t, pe))
	is.Equal(got.Status, status.Throttled)
	var q *quotaError
	is.True(errors.As(got, &q))
	is.Equal(*q, quotaError{Limit: 10, Used: 12}) // exported fields only
	is.True(errors.Is(got, status.ErrThrottled))

	// A call result carries no status of its own: the status sealed in
	// the value is used, so the marker survives.
	result := status.FromProto(sdkv1.Status_STATUS_UNSPECIFIED, overTheWire(t, pe))
	is.Equal(result.Status, status.Throttled)
	is.True(errors.As(result, &q))
}

func TestRegisteredValueType(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	s, pe := status.ToProto(status.MarkPermanent(codeError{Code: "E42"}))
	is.Equal(pe.GetType(), "statustest.CodeError")
	got := status.FromProto(s, overTheWire(t, pe))
	var c codeError
	is.True(errors.As(got, &c))
	is.Equal(c.Code, "E42")
}

func TestRegisteredUnencodable(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	s, pe := status.ToProto(&chanError{C: make(chan int)})
	is.Equal(pe.GetType(), "statustest.ChanError") // the name, without a value
	is.Equal(len(pe.GetValue()), 0)
	got := status.FromProto(s, pe)
	is.Equal(got.Unwrap(), nil)
	is.Equal(got.Message, "chan error")
}

func TestCallResultStatus(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		err    error
		status status.Status
	}{
		{"sentinel keeps its status", status.ErrNotFound, status.NotFound},
		{"HTTP error keeps its status", &status.HTTPStatusError{Method: "GET", URL: "https://x", Code: 429}, status.Throttled},
		{"marked error keeps its status", status.MarkTemporary(errors.New("x")), status.TemporaryError},
		{"classified error keeps its status", fmt.Errorf("dial: %w", context.DeadlineExceeded), status.Timeout},
		{"panic", &status.PanicError{Value: 1}, status.PermanentError},
		{"plain error", errors.New("plain"), status.PermanentError},
		{"error made by Dispatch names its status", nil, status.Timeout},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			_, pe := status.ToProto(tt.err)
			if tt.err == nil {
				pe = &sdkv1.Error{Type: "TIMEOUT", Message: "the call expired after 12 attempts"}
			}
			got := status.FromProto(sdkv1.Status_STATUS_UNSPECIFIED, overTheWire(t, pe))
			is.Equal(got.Status, tt.status)
		})
	}
}

// An error of status PERMANENT_ERROR whose type is not registered crosses
// the wire as a type and a message only: SDKs in other languages that try to
// decode any value they get (dispatch-py unpickles it) are not handed one.
func TestPlainErrorsCarryNoValue(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	_, pe := status.ToProto(fmt.Errorf("wrapped: %w", errors.New("plain")))
	is.Equal(len(pe.GetValue()), 0)
	_, pe = status.ToProto(status.MarkThrottled(errors.New("busy")))
	is.True(len(pe.GetValue()) > 0)
}

func TestHTTPStatusErrorAcrossTheWire(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	_, pe := status.ToProto(fmt.Errorf("fetch stock: %w", &status.HTTPStatusError{Method: "GET", URL: "https://x/stock", Code: 404, Status: "404 Not Found"}))
	is.Equal(pe.GetType(), "dispatch.HTTPStatusError")
	got := status.FromProto(sdkv1.Status_STATUS_UNSPECIFIED, overTheWire(t, pe))
	var h *status.HTTPStatusError
	is.True(errors.As(got, &h))
	is.Equal(*h, status.HTTPStatusError{Method: "GET", URL: "https://x/stock", Code: 404, Status: "404 Not Found"})
	is.Equal(got.Status, status.NotFound)
	is.True(errors.Is(got, status.ErrNotFound))
}

func TestSentinelAcrossTheWire(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	_, pe := status.ToProto(status.ErrIncompatibleState)
	got := status.FromProto(sdkv1.Status_STATUS_UNSPECIFIED, overTheWire(t, pe))
	is.Equal(got.Status, status.IncompatibleState)
	is.Equal(got.Unwrap(), status.ErrIncompatibleState)
}

// A function that returns ErrCanceled (a workflow passing on the cancel of
// its child, say) fails like a cancelled call: PERMANENT_ERROR, type
// CANCELLED, which errors.Is matches in the caller.
func TestCanceledAcrossTheWire(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	st, pe := status.ToProto(fmt.Errorf("charge: %w", dispatcherr.ErrCanceled))
	is.Equal(st, sdkv1.Status_STATUS_PERMANENT_ERROR)
	is.Equal(pe.GetType(), "CANCELLED")
	got := status.FromProto(sdkv1.Status_STATUS_UNSPECIFIED, overTheWire(t, pe))
	is.Equal(got.Status, status.PermanentError)
	is.True(errors.Is(got, dispatcherr.ErrCanceled))
	// The server's own error of a cancelled call.
	got = status.FromProto(sdkv1.Status_STATUS_UNSPECIFIED, &sdkv1.Error{Type: "CANCELLED", Message: "dispatch: call x was cancelled by y"})
	is.Equal(got.Status, status.PermanentError)
	is.True(errors.Is(got, dispatcherr.ErrCanceled))
}

func TestFromProtoEdges(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		status sdkv1.Status
		err    *sdkv1.Error
		want   status.Status
		text   string
	}{
		{"status without error", sdkv1.Status_STATUS_NOT_FOUND, nil, status.NotFound, "NOT_FOUND"},
		{"OK with an error", sdkv1.Status_STATUS_OK, &sdkv1.Error{Message: "odd"}, status.PermanentError, "PERMANENT_ERROR: odd"},
		{"unknown status", sdkv1.Status(99), &sdkv1.Error{Type: "T"}, status.PermanentError, "PERMANENT_ERROR: T"},
		{"unspecified, unknown type", sdkv1.Status_STATUS_UNSPECIFIED, &sdkv1.Error{Type: "ValueError", Message: "bad", Value: []byte{0x80, 0x04, 0x95}}, status.PermanentError, "PERMANENT_ERROR: ValueError: bad"},
		// A registered name with a value this package did not write (another SDK's, say) is kept as text.
		{"foreign value", sdkv1.Status_STATUS_TEMPORARY_ERROR, &sdkv1.Error{Type: "statustest.QuotaError", Message: "m", Value: []byte{0x80, 0x04, 0x95}}, status.TemporaryError, "TEMPORARY_ERROR: statustest.QuotaError: m"},
		{"corrupt value", sdkv1.Status_STATUS_TEMPORARY_ERROR, &sdkv1.Error{Type: "statustest.QuotaError", Message: "m", Value: []byte{0xd9, 0xd9, 0xf7, 0xff, 0x00}}, status.TemporaryError, "TEMPORARY_ERROR: statustest.QuotaError: m"},
		{"null value", sdkv1.Status_STATUS_TEMPORARY_ERROR, &sdkv1.Error{Type: "statustest.QuotaError", Message: "m", Value: []byte{0xd9, 0xd9, 0xf7, 0xf6}}, status.TemporaryError, "TEMPORARY_ERROR: statustest.QuotaError: m"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			got := status.FromProto(tt.status, tt.err)
			is.Equal(got.Status, tt.want)
			is.Equal(got.Error(), tt.text)
			is.Equal(got.Unwrap(), nil)
		})
	}
}

func TestRegisterErrorSafely(t *testing.T) {
	t.Parallel()
	type fresh struct{ quotaError }
	tests := []struct {
		name     string
		register func() error
		message  string
	}{
		{"invalid name", func() error { return status.RegisterErrorSafely[*notReady]("my app/NotReady") }, `dispatch: error type name "my app/NotReady" is not valid`},
		{"empty name", func() error { return status.RegisterErrorSafely[*notReady]("") }, `dispatch: error type name "" is not valid`},
		{"reserved prefix", func() error { return status.RegisterErrorSafely[*notReady]("dispatch.NotReady") }, `dispatch: error type name "dispatch.NotReady" uses the prefix "dispatch."`},
		{"interface type", func() error { return status.RegisterErrorSafely[error]("statustest.Any") }, `dispatch: cannot register the interface type error`},
		{"name taken", func() error { return status.RegisterErrorSafely[*fresh]("statustest.QuotaError") }, `dispatch: error type name "statustest.QuotaError" is already registered for *status_test.quotaError`},
		{"type registered", func() error { return status.RegisterErrorSafely[*quotaError]("statustest.Other") }, `dispatch: error type *status_test.quotaError is already registered as "statustest.QuotaError"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			err := tt.register()
			is.True(err != nil)
			is.True(strings.HasPrefix(err.Error(), tt.message))
		})
	}
}

func TestRegisterErrorPanics(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	defer func() {
		v := recover()
		err, ok := v.(error)
		is.True(ok)
		is.True(strings.HasPrefix(err.Error(), "dispatch: error type name"))
	}()
	status.RegisterError[*notReady]("not valid!")
}
