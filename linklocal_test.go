package dispatch_test

// The root package's tests run local mode (WithLocalServer, New without a
// Dispatch server configured), which needs package local linked into the
// program. This import links it into the test binary, internal tests
// included; they cannot import it themselves, since package local imports
// package dispatch. TestLocalModeNotLinked stands for a program without it.
import _ "github.com/dispatchkit/dispatch/local"
