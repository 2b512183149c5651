package trace

import (
	"os"
	"strings"
)

// EnvVar is the environment variable that turns tracing on.
const EnvVar = "DISPATCH_TRACE"

// Enabled reports whether the environment variable DISPATCH_TRACE turns
// tracing on: see [EnabledFrom].
func Enabled() bool {
	return EnabledFrom(os.Getenv(EnvVar))
}

// EnabledFrom reports whether value, the value of DISPATCH_TRACE, turns
// tracing on: it does unless it is empty, "0" or "false", in any case and
// ignoring surrounding spaces. "1", "true" and "yes" all turn it on.
func EnabledFrom(value string) bool {
	switch strings.ToLower(strings.TrimSpace(value)) {
	case "", "0", "false":
		return false
	}
	return true
}
