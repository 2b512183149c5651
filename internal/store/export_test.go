package store

// MaxGroup is maxGroup, the most batches of one transaction.
const MaxGroup = maxGroup
