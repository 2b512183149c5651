// Package cli is the dispatch command: each subcommand in its own file,
// every one taking its arguments and output streams so that tests run the
// command in-process. cmd/dispatch only hands over to [Run].
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"

	"github.com/spf13/cobra"
)

// Run runs the dispatch command with args (without the program name),
// writing results to stdout and logs and errors to stderr, and returns the
// process exit code. Long-running commands stop when ctx ends.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := &cobra.Command{
		Use:           "dispatch",
		Short:         "Run and inspect a Dispatch server",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(
		testCommand(stdout, stderr),
		serveCommand(stdout, stderr),
		callsCommand(stdout, stderr),
		callCommand(stdout, stderr),
		cancelCommand(stdout, stderr),
		benchCommand(stdout, stderr),
	)
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintf(stderr, "dispatch: %v\n", err)
		var usage usageError
		if errors.As(err, &usage) {
			return 2
		}
		return 1
	}
	return 0
}

// usageError marks errors in the command line.
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

// defaultStateDir is where the server keeps its database and signing key
// unless --state says otherwise: $XDG_STATE_HOME/dispatch, else
// ~/.local/state/dispatch; on macOS and Windows the user configuration
// directory (os.UserConfigDir) joined with "dispatch".
func defaultStateDir() (string, error) {
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "dispatch"), nil
	}
	if runtime.GOOS == "darwin" || runtime.GOOS == "windows" {
		d, err := os.UserConfigDir()
		if err != nil {
			return "", fmt.Errorf("no state directory: %w; pass --state DIR or --memory", err)
		}
		return filepath.Join(d, "dispatch"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("no state directory: %w; pass --state DIR or --memory", err)
	}
	return filepath.Join(home, ".local", "state", "dispatch"), nil
}
