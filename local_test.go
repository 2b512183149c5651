package dispatch

import (
	"strings"
	"testing"

	"github.com/matryer/is"
	"github.com/rs/zerolog"
)

// TestLocalModeNotLinked checks what New says in a program that does not
// import package local: with no Dispatch server configured, or with
// WithLocalServer, it fails with an error naming the variables to set and
// the import to add, and starts nothing.
func TestLocalModeNotLinked(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		opts []Option
		want []string
	}{
		{
			name: "no server configured",
			want: []string{"dispatch: no Dispatch server configured", EnvAPIURL, EnvAPIKey, "WithAPIURL", "dispatch test", `import _ "github.com/dispatchkit/dispatch/local"`},
		},
		{
			name: "WithLocalServer",
			opts: []Option{WithLocalServer("")},
			want: []string{"dispatch: WithLocalServer: local mode is not linked into this program", `import _ "github.com/dispatchkit/dispatch/local"`},
		},
		{
			name: "WithLocalServer, with a server configured",
			opts: []Option{WithLocalServer(t.TempDir()), WithAPIURL(testAPIURL), WithAPIKey("k")},
			want: []string{"dispatch: WithLocalServer: local mode is not linked", `import _ "github.com/dispatchkit/dispatch/local"`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			opts := append([]Option{noEnv(), WithZerolog(zerolog.Nop()), withLocalStarter(nil)}, tt.opts...)
			d, err := New(opts...)
			is.True(d == nil) // no instance
			is.True(err != nil)
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

// TestLocalModeLinked checks that the test binary has local mode (see
// linklocal_test.go): New without a Dispatch server runs one in-process,
// and points the instance at it.
func TestLocalModeLinked(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	d, err := New(env(map[string]string{EnvStateDir: t.TempDir()}), WithZerolog(zerolog.Nop()))
	is.NoErr(err)
	defer d.Close()
	is.True(d.local != nil)                                          // an embedded server
	is.Equal(d.APIURL(), d.local.URL())                              // dispatches to it
	is.True(strings.HasPrefix(d.EndpointURL(), "http://127.0.0.1:")) // on a loopback endpoint
	is.True(d.StateDir() != "")                                      // keeps its calls on disk
}
