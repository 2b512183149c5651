package status_test

import (
	"testing"

	"go.uber.org/goleak"
)

// The classification tests start servers and HTTP clients: none of their
// goroutines may outlive the tests.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
