package cli

import (
	"fmt"
	"io"
	"time"

	"github.com/rs/zerolog"
	"github.com/spf13/pflag"

	"github.com/dispatchkit/dispatch/internal/endpointpolicy"
	"github.com/dispatchkit/dispatch/server"
)

// serverFlags are the flags `dispatch test` and `dispatch serve` share:
// where the calls are kept, which endpoints calls may name, and how long
// idempotency keys are kept.
type serverFlags struct {
	stateDir string
	memory   bool // dispatch test only
	postgres string
	allow    []string
	keyKeep  time.Duration
	leaseTTL time.Duration  // --lease-ttl, with --postgres only
	syncMode string         // --sync
	fs       *pflag.FlagSet // to tell a --sync given from its default
	// --initial-concurrency, --max-concurrency: the bounds of each
	// endpoint's adaptive limit of requests in flight (0: the server's
	// defaults, 128 and 1024).
	initialConc, maxConc int
}

// register adds the shared flags to fs; withMemory adds --memory too.
func (f *serverFlags) register(fs *pflag.FlagSet, withMemory bool, allowHelp string) {
	fs.StringVar(&f.stateDir, "state", "", "state directory (default $XDG_STATE_HOME/dispatch or ~/.local/state/dispatch)")
	if withMemory {
		fs.BoolVar(&f.memory, "memory", false, "keep calls in memory only (nothing survives a restart)")
	}
	fs.StringVar(&f.postgres, "postgres", "", "keep calls and the signing key in this PostgreSQL database (postgres://user:password@host:5432/db) instead of the state directory")
	fs.StringArrayVar(&f.allow, "allow-endpoint", nil, allowHelp)
	fs.StringVar(&f.syncMode, "sync", "normal", "SQLite's durability: normal (sync at checkpoints; survives a crash of the process) or full (sync every commit; survives a power loss)")
	fs.DurationVar(&f.leaseTTL, "lease-ttl", 0, "with --postgres: how long a replica's partitions wait for another replica after its death (the failover time; at least 1s, default 10s); leases are renewed five times per lease time")
	fs.IntVar(&f.initialConc, "initial-concurrency", 0, "requests in flight to each endpoint at first (default 128); the limit adapts, lowered by throttling (429, 503, THROTTLED, timeouts); with --postgres it is the cluster's, split evenly between the live replicas (rounded up), whose partitions share it")
	fs.IntVar(&f.maxConc, "max-concurrency", 0, "the most requests in flight to each endpoint the adaptive limit reaches (default 1024); with --postgres the cluster's, each of R live replicas reaching ceil(it / R)")
	f.fs = fs
	fs.DurationVar(&f.keyKeep, "key-retention", 24*time.Hour, "how long an idempotency key (Idempotency-Key header of Dispatch) names its calls; after it, the key is forgotten")
}

// check refuses contradictory or invalid values of the shared flags.
func (f *serverFlags) check() error {
	if _, err := endpointpolicy.New(f.allow...); err != nil {
		return usageError{fmt.Errorf("--allow-endpoint: %v", err)}
	}
	if f.keyKeep < 0 {
		return usageError{fmt.Errorf("--key-retention %v is negative: want a duration such as 24h (0 for the default, 24h)", f.keyKeep)}
	}
	if f.postgres != "" && (f.memory || f.stateDir != "") {
		if f.memory {
			return usageError{fmt.Errorf("--postgres keeps the calls in PostgreSQL: leave out --memory and --state")}
		}
		return usageError{fmt.Errorf("--postgres keeps the calls in PostgreSQL: leave out --state")}
	}
	if f.fs != nil && f.fs.Changed("lease-ttl") && f.postgres == "" {
		return usageError{fmt.Errorf("--lease-ttl is the lease time of the replicas of a PostgreSQL database: give --postgres too, or leave it out")}
	}
	if _, err := f.fullSync(); err != nil {
		return usageError{err}
	}
	switch {
	case f.initialConc < 0 || f.maxConc < 0:
		return usageError{fmt.Errorf("--initial-concurrency and --max-concurrency are numbers of requests in flight: give a positive number, or leave them out for the defaults (128 and 1024)")}
	case f.maxConc > 0 && f.initialConc > f.maxConc:
		return usageError{fmt.Errorf("--initial-concurrency %d is above --max-concurrency %d: the limit starts at most at its maximum; lower the first or raise the second", f.initialConc, f.maxConc)}
	}
	return nil
}

// fullSync reports whether --sync asks for synchronous=FULL.
func (f *serverFlags) fullSync() (bool, error) {
	set := f.fs != nil && f.fs.Changed("sync")
	return checkSync(f.syncMode, set, f.memory, f.postgres != "")
}

// apply sets the storage and policy fields of cfg from f; the patterns of
// --allow-endpoint are appended to cfg.AllowEndpoints.
func (f *serverFlags) apply(cfg *server.Config) error {
	cfg.Memory = f.memory
	cfg.Postgres = f.postgres
	cfg.AllowEndpoints = append(cfg.AllowEndpoints, f.allow...)
	cfg.KeyRetention = f.keyKeep
	cfg.LeaseTTL = f.leaseTTL
	cfg.InitialConcurrency, cfg.MaxConcurrency = f.initialConc, f.maxConc
	full, err := f.fullSync()
	if err != nil {
		return usageError{err}
	}
	cfg.FullSync = full
	if !f.memory && f.postgres == "" {
		dir := f.stateDir
		if dir == "" {
			var err error
			if dir, err = defaultStateDir(); err != nil {
				return err
			}
		}
		cfg.StateDir = dir
	}
	return nil
}

// newLogger returns the logger of a server command: JSON lines on w when
// json, else zerolog's console format without colours; debug level when
// verbose.
func newLogger(w io.Writer, json, verbose bool) zerolog.Logger {
	level := zerolog.InfoLevel
	if verbose {
		level = zerolog.DebugLevel
	}
	if !json {
		w = zerolog.ConsoleWriter{Out: w, NoColor: true, TimeFormat: time.TimeOnly}
	}
	return zerolog.New(w).Level(level).With().Timestamp().Logger()
}
