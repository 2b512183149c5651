package server

import (
	"os"
	"time"

	"github.com/dispatchkit/dispatch/internal/scheduler"
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

// WithNoEarlyStart makes children wait for the commit that creates them
// before they run (scheduler.Config.NoEarlyStart).
func WithNoEarlyStart(c *Config) { c.noEarlyStart = true }

// Live returns the number of calls not done.
func (s *Server) Live() int { return s.sum((*scheduler.Engine).Live) }

// sum adds f over the server's engines.
func (s *Server) sum(f func(*scheduler.Engine) int) int {
	n := 0
	for _, e := range s.engines() {
		n += f(e)
	}
	return n
}

// WithLeases sets a replica's lease duration, the period of its manager
// and the number of partitions it makes in a new database (the defaults
// when zero).
func WithLeases(c *Config, ttl, every time.Duration, partitions int) {
	c.leaseTTL, c.renewEvery, c.partitions = ttl, every, partitions
}

// Crash stops a replica as if its process died: its manager stops, its
// engines close (requests in flight are cancelled, their outcomes lost),
// and it neither releases its leases nor leaves the replicas, which
// others see only once the lease time has passed.
func (s *Server) Crash() error {
	if s.cl != nil {
		s.cl.crashed.Store(true)
	}
	return s.Close()
}

// Pause stops the manager of a replica (or starts it again), as a process
// frozen (a long pause, a network cut from the database) whose engines
// carry on: it no longer renews its leases nor heartbeats, until its
// partitions are taken and its engines' writes fenced.
func (s *Server) Pause(paused bool) { s.cl.paused.Store(paused) }

// Replica returns the name of a replica ("" for a server that owns its
// store).
func (s *Server) Replica() string {
	if s.cl == nil {
		return ""
	}
	return s.cl.name
}

// Store returns the server's store.
func (s *Server) Store() store.Store { return s.store }

// Suspended returns the number of suspended calls.
func (s *Server) Suspended() int { return s.sum((*scheduler.Engine).Suspended) }

// Watched returns the number of calls someone waits for with Result.
func (s *Server) Watched() int { return s.sum((*scheduler.Engine).Watched) }

// Timers returns the number of wake-ups the engine holds.
func (s *Server) Timers() int { return s.sum((*scheduler.Engine).Timers) }

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
