package server

import (
	"os"
	"time"

	"github.com/dispatchkit/dispatch/internal/store"
)

// WithStore makes the server wrap its store with wrap, and retry a failed
// commit for retry (the default when zero).
func WithStore(c *Config, wrap func(store.Store) store.Store, retry time.Duration) {
	c.wrapStore, c.commitRetry = wrap, retry
}

// WithMaxHold sets how long the outcome of a child that resumed its parent
// waits for the parent's answer before it is committed on its own
// (scheduler.Config.MaxHold).
func WithMaxHold(c *Config, d time.Duration) { c.maxHold = d }

// Live returns the number of calls not done.
func (s *Server) Live() int { return s.engine.Live() }

// Store returns the server's store.
func (s *Server) Store() store.Store { return s.store }

// Suspended returns the number of suspended calls.
func (s *Server) Suspended() int { return s.engine.Suspended() }

// Watched returns the number of calls someone waits for with Result.
func (s *Server) Watched() int { return s.engine.Watched() }

// Timers returns the number of wake-ups the engine holds.
func (s *Server) Timers() int { return s.engine.Timers() }

// BodyDeadline is bodyDeadline, the handler that bounds the time to read
// a request's body.
var BodyDeadline = bodyDeadline

// WithKeyFile makes the server wrap the temporary file of a new signing
// key with wrap.
func WithKeyFile(c *Config, wrap func(f *os.File) KeyTemp) {
	c.wrapKeyFile = func(f *os.File) keyTemp { return wrap(f) }
}

// KeyTemp is keyTemp.
type KeyTemp = keyTemp
