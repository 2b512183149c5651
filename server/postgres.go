package server

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"

	"github.com/dispatchkit/dispatch/internal/signature"
	"github.com/dispatchkit/dispatch/internal/store/pgstore"
)

// openPostgres opens the PostgreSQL store of Config.Postgres, which makes
// this server the database's only one.
func openPostgres(ctx context.Context, url string) (*pgstore.Store, error) {
	pg, err := pgstore.Open(ctx, url, pgstore.Options{})
	var locked *pgstore.LockedError
	switch {
	case errors.As(err, &locked):
		return nil, fmt.Errorf("server: %s: stop it, or give this server another database "+
			"(--postgres of dispatch serve or dispatch test, Config.Postgres in Go); one server per database until the partitioned mode", strings.TrimPrefix(locked.Error(), "pgstore: "))
	case err != nil:
		return nil, fmt.Errorf("server: opening the store of Config.Postgres: %w", err)
	}
	return pg, nil
}

// postgresKey returns cfg.SigningKey, or the key kept in the database:
// made by the first server (servers starting at once agree on one, see
// [pgstore.Store.SigningKey]) and read by the next.
func postgresKey(ctx context.Context, cfg *Config, pg *pgstore.Store) (ed25519.PrivateKey, error) {
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
