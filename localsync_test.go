package dispatch

import (
	"context"
	"errors"
	"testing"

	"github.com/matryer/is"
	"github.com/rs/zerolog"

	"github.com/dispatchkit/dispatch/internal/localmode"
)

// TestWithLocalFullSync checks what local mode asks of its server: a full
// sync with WithLocalFullSync on a state directory (given or from the
// environment), never on the memory store, and none by default.
func TestWithLocalFullSync(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tests := []struct {
		name     string
		opts     []Option
		fullSync bool
		memory   bool
	}{
		{name: "directory, default", opts: []Option{noEnv(), WithLocalServer(dir)}},
		{name: "directory, full sync", opts: []Option{noEnv(), WithLocalServer(dir), WithLocalFullSync()}, fullSync: true},
		{name: "state dir from the environment, full sync", opts: []Option{env(map[string]string{EnvStateDir: dir}), WithLocalFullSync()}, fullSync: true},
		{name: "memory, full sync asked", opts: []Option{noEnv(), WithLocalServer(""), WithLocalFullSync()}, memory: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			var got localmode.Config
			refused := errors.New("test: not starting")
			starter := func(_ context.Context, c localmode.Config) (localmode.Server, error) {
				got = c
				return nil, refused
			}
			opts := append([]Option{WithZerolog(zerolog.Nop()), withLocalStarter(starter)}, tt.opts...)
			d, err := New(opts...)
			is.True(d == nil)
			is.True(errors.Is(err, refused)) // the starter was asked
			is.Equal(got.FullSync, tt.fullSync)
			is.Equal(got.Memory, tt.memory)
		})
	}
}
