package cli_test

import (
	"strings"
	"testing"

	"github.com/matryer/is"
)

// TestSyncFlag checks --sync of dispatch test and dispatch bench: normal
// and full are accepted on SQLite; other values, and --sync with --memory
// or --postgres, are usage errors naming the flag and what to do.
func TestSyncFlag(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string // in stderr; "" when the server starts
	}{
		{"test, full on sqlite", []string{"test", "http://127.0.0.1:1", "--port", "0", "--state", "", "--sync", "full"}, ""},
		{"test, normal on sqlite", []string{"test", "http://127.0.0.1:1", "--port", "0", "--state", "", "--sync", "normal"}, ""},
		{"test, memory without --sync", []string{"test", "http://127.0.0.1:1", "--port", "0", "--memory"}, ""},
		{"test, bad value", []string{"test", "http://127.0.0.1:1", "--port", "0", "--sync", "FULL"}, `--sync "FULL": want normal (`},
		{"test, empty value", []string{"test", "http://127.0.0.1:1", "--port", "0", "--sync", ""}, `--sync "": want normal (`},
		{"test, with --memory", []string{"test", "http://127.0.0.1:1", "--port", "0", "--memory", "--sync", "normal"}, "--sync normal: --memory keeps no file to sync"},
		{"test, with --postgres", []string{"test", "http://127.0.0.1:1", "--port", "0", "--postgres", "postgres://h/db", "--sync", "full"}, "PostgreSQL's own synchronous_commit decides"},
		{"bench, bad value", []string{"bench", "--sync", "off"}, `--sync "off": want normal (`},
		{"bench, with --memory", []string{"bench", "--memory", "--sync", "full"}, "--sync full: --memory keeps no file to sync"},
		{"bench, negative --long-steps", []string{"bench", "--long-steps", "-1"}, "--long-steps -1: want 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			args := tt.args
			for i, a := range args {
				if a == "--state" {
					args = append(append([]string{}, args[:i+1]...), args[i+1:]...)
					args[i+1] = t.TempDir()
				}
			}
			if tt.want != "" {
				_, errOut, code := run(t, args...)
				is.Equal(code, 2) // a usage error
				is.True(strings.Contains(errOut, tt.want))
				return
			}
			_, _, _, stop := runTest(t, args[1:]...)
			is.Equal(stop(), 0)
		})
	}
}
