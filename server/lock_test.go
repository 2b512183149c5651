package server_test

import (
	"strings"
	"testing"

	"github.com/dispatchkit/dispatch/server"
	"github.com/matryer/is"
)

// Two servers on one state directory would both recover and run the same
// calls: the second is refused with a message that says what to do, and
// the directory is free again once the first is closed.
func TestStateDirLock(t *testing.T) {
	is := is.New(t)
	dir := t.TempDir()
	first, err := server.New(server.Config{StateDir: dir})
	is.NoErr(err)

	_, err = server.New(server.Config{StateDir: dir})
	is.True(err != nil)
	is.True(strings.Contains(err.Error(), "uses the state directory "+dir))
	is.True(strings.Contains(err.Error(), "--state"))

	is.NoErr(first.Close())
	again, err := server.New(server.Config{StateDir: dir})
	is.NoErr(err)
	is.NoErr(again.Close())
}
