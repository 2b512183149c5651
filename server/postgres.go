package server

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"

	"github.com/dispatchkit/dispatch/internal/signature"
)

// keyKeeper keeps the signing key in the database (pgstore.Cluster).
type keyKeeper interface {
	SigningKey(ctx context.Context, generate func() (string, error)) (key string, made bool, err error)
}

// postgresKey returns cfg.SigningKey, or the key kept in the database:
// made by the first server (servers starting at once agree on one, see
// [pgstore.Cluster.SigningKey]) and read by the next.
func postgresKey(ctx context.Context, cfg *Config, pg keyKeeper) (ed25519.PrivateKey, error) {
	if cfg.SigningKey != nil {
		return cfg.SigningKey, nil
	}
	text, made, err := pg.SigningKey(ctx, func() (string, error) {
		_, key, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return "", err
		}
		return signature.EncodePrivateKey(key), nil
	})
	if err != nil {
		return nil, fmt.Errorf("server: the signing key of Config.Postgres: %w", err)
	}
	key, err := signature.ParsePrivateKey(text)
	if err != nil {
		return nil, fmt.Errorf("server: the signing key in the database of Config.Postgres (table keys, name 'signing') is unreadable "+
			"(delete that row to make a new one, which changes DISPATCH_VERIFICATION_KEY): %w", err)
	}
	if made {
		cfg.Logger.Info().Msg("made a new signing key, kept in the database")
	}
	return key, nil
}
