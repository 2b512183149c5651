package server

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/dispatchkit/dispatch/internal/signature"
)

// keyFile is the name of the signing key in the state directory: standard
// padded base64 of the 32-byte Ed25519 seed (PEM PKCS #8 is also read),
// mode 0600.
const keyFile = "signing.key"

// signingKey returns cfg.SigningKey, or the key of cfg.StateDir (made on
// first start), or a fresh key when there is no state directory.
func signingKey(cfg *Config) (ed25519.PrivateKey, error) {
	if cfg.SigningKey != nil {
		return cfg.SigningKey, nil
	}
	if cfg.StateDir == "" {
		_, key, err := ed25519.GenerateKey(rand.Reader)
		return key, err
	}
	path := filepath.Join(cfg.StateDir, keyFile)
	data, err := os.ReadFile(path)
	switch {
	case err == nil:
		key, err := signature.ParsePrivateKey(string(data))
		if err != nil {
			return nil, fmt.Errorf("server: the signing key %s in Config.StateDir is unreadable (delete it to make a new one, which changes DISPATCH_VERIFICATION_KEY): %w", path, err)
		}
		if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
			cfg.Logger.Warn().Str("path", path).Str("mode", fi.Mode().Perm().String()).Msg("signing key is readable by others; chmod 600 it")
		}
		return key, nil
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("server: reading the signing key in Config.StateDir: %w", err)
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("server: making Config.StateDir: %w", err)
	}
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	// Write to a temporary file and link it into place, so that two
	// servers starting at once agree on one key and none sees half a file.
	tmp, err := os.CreateTemp(cfg.StateDir, keyFile+".*")
	if err != nil {
		return nil, fmt.Errorf("server: writing the signing key in Config.StateDir: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err = tmp.Chmod(0o600); err == nil {
		_, err = tmp.WriteString(signature.EncodePrivateKey(key) + "\n")
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Link(tmp.Name(), path)
	}
	if errors.Is(err, fs.ErrExist) {
		return signingKey(cfg) // another process made it first
	}
	if err != nil {
		return nil, fmt.Errorf("server: writing the signing key in Config.StateDir: %w", err)
	}
	cfg.Logger.Info().Str("path", path).Msg("made a new signing key")
	return key, nil
}
