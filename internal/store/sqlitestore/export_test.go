package sqlitestore

// WALBackstop is walBackstop, for tests.
const WALBackstop = walBackstop
