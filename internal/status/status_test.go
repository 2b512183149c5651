package status_test

import (
	"strconv"
	"testing"

	"github.com/matryer/is"

	"github.com/dispatchkit/dispatch/internal/status"
)

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
