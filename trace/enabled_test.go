package trace_test

import (
	"testing"

	"github.com/matryer/is"

	"github.com/dispatchkit/dispatch/trace"
)

func TestEnabledFrom(t *testing.T) {
	t.Parallel()
	tests := []struct {
		value string
		want  bool
	}{
		{"", false},
		{"0", false},
		{"false", false},
		{"FALSE", false},
		{"False", false},
		{" false ", false},
		{"  ", false},
		{"1", true},
		{"true", true},
		{"TRUE", true},
		{"yes", true},
		{"on", true},
		{"2", true},
		{"off", true}, // only "", "0" and "false" turn tracing off
	}
	for _, tt := range tests {
		t.Run(tt.value, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			is.Equal(trace.EnabledFrom(tt.value), tt.want)
		})
	}
}

// Not parallel: it sets the environment.
func TestEnabled(t *testing.T) {
	is := is.New(t)
	t.Setenv(trace.EnvVar, "1")
	is.True(trace.Enabled())
	t.Setenv(trace.EnvVar, "false")
	is.True(!trace.Enabled())
	t.Setenv(trace.EnvVar, "")
	is.True(!trace.Enabled())
}
