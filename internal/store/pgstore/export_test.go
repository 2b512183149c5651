package pgstore

// CheckLock checks the lock's connection now, as the store does every
// lockCheckEvery.
func (s *Store) CheckLock() { s.lock.check() }
