package sqlitestore

// WALBackstop is walBackstop, for tests.
const WALBackstop = walBackstop

// CheckpointEvery is checkpointEvery, for tests.
const CheckpointEvery = checkpointEvery

// SetCheckpointHook makes the store opened with o call hook at each wake of
// its background checkpointer, in place of the checkpoint, which hook may
// run (checkpoint) or not.
func SetCheckpointHook(o *Options, hook func(checkpoint func() error)) {
	o.checkpointHook = hook
}

// SchemaVersion is schemaVersion.
const SchemaVersion = schemaVersion

// Writes are the numbers of statements s's writer has run and of rows
// they changed.
func Writes(s *Store) (stmts, rows int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.wr.nstmts, s.wr.nrows
}
