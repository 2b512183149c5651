package status_test

import (
	"strconv"
	"testing"

	sdkv1 "buf.build/gen/go/stealthrocket/dispatch-proto/protocolbuffers/go/dispatch/sdk/v1"
	"github.com/matryer/is"

	"github.com/dispatchkit/dispatch/internal/status"
)

func TestStatusTable(t *testing.T) {
	t.Parallel()
	tests := []struct {
		status  status.Status
		number  int32
		name    string
		retried bool
	}{
		{status.OK, 1, "OK", false},
		{status.Timeout, 2, "TIMEOUT", true},
		{status.Throttled, 3, "THROTTLED", true},
		{status.InvalidArgument, 4, "INVALID_ARGUMENT", false},
		{status.InvalidResponse, 5, "INVALID_RESPONSE", false},
		{status.TemporaryError, 6, "TEMPORARY_ERROR", true},
		{status.PermanentError, 7, "PERMANENT_ERROR", false},
		{status.IncompatibleState, 8, "INCOMPATIBLE_STATE", false}, // restarted, not retried
		{status.DNSError, 9, "DNS_ERROR", true},
		{status.TCPError, 10, "TCP_ERROR", true},
		{status.TLSError, 11, "TLS_ERROR", true},
		{status.HTTPError, 12, "HTTP_ERROR", true},
		{status.Unauthenticated, 13, "UNAUTHENTICATED", false},
		{status.PermissionDenied, 14, "PERMISSION_DENIED", false},
		{status.NotFound, 15, "NOT_FOUND", false},
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
	is.Equal(status.Status(0).String(), "Status(0)")
	is.Equal(status.Status(99).String(), "Status(99)")
	is.True(!status.Status(99).Retried())
}

func TestFromHTTPStatus(t *testing.T) {
	t.Parallel()
	tests := []struct {
		code int
		want status.Status
	}{
		{100, status.PermanentError},
		{101, status.PermanentError},
		{200, status.OK},
		{201, status.OK},
		{204, status.OK},
		{299, status.OK},
		{301, status.PermanentError},
		{304, status.PermanentError},
		{400, status.InvalidArgument},
		{401, status.Unauthenticated},
		{402, status.PermanentError},
		{403, status.PermissionDenied},
		{404, status.NotFound},
		{405, status.PermanentError},
		{408, status.Timeout},
		{409, status.PermanentError},
		{413, status.PermanentError},
		{422, status.PermanentError},
		{429, status.Throttled},
		{500, status.TemporaryError},
		{501, status.PermanentError},
		{502, status.TemporaryError},
		{503, status.TemporaryError},
		{504, status.TemporaryError},
		{599, status.TemporaryError},
		{0, status.PermanentError},
		{600, status.PermanentError},
		{-1, status.PermanentError},
	}
	for _, tt := range tests {
		t.Run(strconv.Itoa(tt.code), func(t *testing.T) {
			is := is.New(t)
			is.Equal(status.FromHTTPStatus(tt.code), tt.want)
		})
	}
}
