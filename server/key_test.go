package server_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/matryer/is"

	"github.com/dispatchkit/dispatch/server"
)

// failingKeyFile fails one step of writing a new signing key.
type failingKeyFile struct {
	*os.File
	fail string // "chmod", "write", "short write", "sync" or "close"
}

var errInjected = errors.New("injected failure")

func (f *failingKeyFile) Chmod(mode fs.FileMode) error {
	if f.fail == "chmod" {
		return errInjected
	}
	return f.File.Chmod(mode)
}

func (f *failingKeyFile) WriteString(s string) (int, error) {
	switch f.fail {
	case "write":
		return 0, errInjected
	case "short write":
		n, _ := f.File.WriteString(s[:len(s)/2]) // half a key on disk
		return n, errInjected
	}
	return f.File.WriteString(s)
}

func (f *failingKeyFile) Sync() error {
	if f.fail == "sync" {
		return errInjected
	}
	return f.File.Sync()
}

func (f *failingKeyFile) Close() error {
	err := f.File.Close()
	if f.fail == "close" {
		return errInjected
	}
	return err
}

// TestSigningKeyWriteFails checks that any failure while writing a new
// signing key fails New with an error saying which step failed and where,
// and leaves no key (nor temporary file) behind: a half-written key, or
// one readable by others, must never be linked into place.
func TestSigningKeyWriteFails(t *testing.T) {
	tests := []struct {
		fail string
		want string
	}{
		{"chmod", "setting the mode of"},
		{"write", "writing"},
		{"short write", "writing"},
		{"sync", "syncing"},
		{"close", "closing"},
	}
	for _, tt := range tests {
		t.Run(tt.fail, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			dir := t.TempDir()
			cfg := server.Config{StateDir: dir}
			server.WithKeyFile(&cfg, func(f *os.File) server.KeyTemp { return &failingKeyFile{File: f, fail: tt.fail} })
			srv, err := server.New(cfg)
			if err == nil {
				srv.Close()
			}
			is.True(errors.Is(err, errInjected))
			msg := err.Error()
			is.True(strings.HasPrefix(msg, "server: making the signing key "+filepath.Join(dir, "signing.key")+" in Config.StateDir: "+tt.want)) // what failed, and where
			_, err = os.Stat(filepath.Join(dir, "signing.key"))
			is.True(errors.Is(err, fs.ErrNotExist)) // no key linked
			left, err := filepath.Glob(filepath.Join(dir, "signing.key*"))
			is.NoErr(err)
			is.Equal(len(left), 0) // nor a temporary file left
		})
	}

	t.Run("a later start makes a good key", func(t *testing.T) {
		is := is.New(t)
		dir := t.TempDir()
		cfg := server.Config{StateDir: dir}
		server.WithKeyFile(&cfg, func(f *os.File) server.KeyTemp { return &failingKeyFile{File: f, fail: "write"} })
		_, err := server.New(cfg)
		is.True(err != nil)
		srv, err := server.New(server.Config{StateDir: dir})
		is.NoErr(err)
		defer srv.Close()
		fi, err := os.Stat(filepath.Join(dir, "signing.key"))
		is.NoErr(err)
		is.Equal(fi.Mode().Perm(), os.FileMode(0o600))
	})
}
