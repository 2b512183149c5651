package pgstore

// CheckLock checks the lock's connection now, as the store does every
// lockCheckEvery.
func (s *Store) CheckLock() { s.lock.check() }

// SchemaV1 is the schema of version 1, as its builds made it.
const SchemaV1 = schema

// SchemaVersion is schemaVersion.
const SchemaVersion = schemaVersion
