package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/dispatchkit/dispatch"
	"github.com/matryer/is"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestAutoRetry(t *testing.T) {
	tests := []struct {
		name   string
		job    Job
		want   []string
		absent []string
	}{
		{"succeeds at once", Job{Name: "now", Failures: 0}, []string{
			"attempt 1: success",
			"result after ",
			"now done after 1 attempts",
		}, []string{"attempt 2"}},
		{"three temporary errors", Job{Name: "later", Failures: 3}, []string{
			"attempt 1: temporary error, Dispatch will retry",
			"attempt 2 (",
			"attempt 3 (",
			"after the previous one): temporary error, Dispatch will retry",
			"attempt 4 (",
			"after the previous one): success",
			"later done after 4 attempts",
		}, []string{"attempt 5"}},
		{"permanent error", Job{Name: "never", Failures: 3, Permanent: true}, []string{
			"attempt 1: permanent error, Dispatch will not retry",
			"flaky failed after ",
			"PERMANENT_ERROR",
			"flaky: never is misconfigured",
		}, []string{"attempt 2"}},
	}
	// Both transports of local mode: in process (the default) and
	// signed HTTP.
	for _, transport := range []string{"inproc", "http"} {
		for _, tt := range tests {
			t.Run(transport+"/"+tt.name, func(t *testing.T) {
				t.Setenv(dispatch.EnvLocalTransport, transport)
				is := is.New(t)
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				var buf bytes.Buffer
				is.NoErr(run(ctx, &buf, tt.job, dispatch.WithLocalServer(t.TempDir())))
				got := buf.String()
				for _, w := range tt.want {
					if !strings.Contains(got, w) {
						t.Errorf("output lacks %q:\n%s", w, got)
					}
				}
				for _, a := range tt.absent {
					if strings.Contains(got, a) {
						t.Errorf("output has %q:\n%s", a, got)
					}
				}
			})
		}
	}
}
