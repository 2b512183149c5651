// Package store defines how the local Dispatch server keeps its calls
// durable, and the types its implementations share.
//
// # Model
//
// The scheduler keeps the hot state of every live call in memory and writes
// each change to a [Store] before it acts on it. A change is a [Batch]: the
// rows of the calls it creates or updates, the results it adds to the inbox
// of a suspended parent, the inbox results a resume consumed, and the
// attempts it made (and, rarely, server-wide [Batch.Meta] values, and the
// idempotency keys of Dispatch requests: see [Key]). A Batch
// is applied atomically. [Committer] groups the batches of concurrent steps
// into one transaction (group commit), so one slow disk sync does not
// serialise every step.
//
// After a restart, [Store.Recover] hands back every call that is not done,
// with its inbox; the scheduler rebuilds its memory from them.
//
// # Several replicas
//
// Every method is expressed as whole-row upserts and keyed deletes inside
// one transaction, so a SQL implementation (pgstore, on PostgreSQL) maps
// each Apply onto one transaction. In the cluster mode of pgstore, several
// servers share one database: the calls are split into partitions by a
// hash of their root id ([PartitionOf]), each leased to one replica with
// an epoch, every transaction checking its partition's epoch first, so
// that the Apply of a replica whose lease moved to another fails with
// [ErrFenced] and writes nothing (see the package documentation of
// pgstore). The single-process stores need none of it: their calls are in
// partition 0.
package store

import (
	"context"
	"errors"
	"time"
)

// ErrNotFound is returned by lookups of a call id that is not stored.
var ErrNotFound = errors.New("store: call not found")

// ErrClosed is returned by a [Store] or [Committer] used after Close.
var ErrClosed = errors.New("store: closed")

// CallState is where a call is in its life.
type CallState uint8

const (
	// Pending calls are waiting to run (first run, retry or resume).
	Pending CallState = iota + 1
	// Suspended calls returned a Poll and wait for results or max_wait.
	Suspended
	// Done calls have a final outcome (Status, Output, Error).
	Done
)

// String returns "pending", "suspended" or "done".
func (s CallState) String() string {
	switch s {
	case Pending:
		return "pending"
	case Suspended:
		return "suspended"
	case Done:
		return "done"
	}
	return "unknown"
}

// Call is the durable row of one dispatch id. Protobuf payloads are kept
// marshaled so that the store never depends on their types.
type Call struct {
	ID       string
	ParentID string // "" for a root call
	RootID   string // ID itself for a root call
	// ParentGen is the generation of the parent when this call was made.
	// A result is delivered to the parent only while its generation is
	// unchanged: a tail call or a restart orphans the children of the
	// previous generation.
	ParentGen     uint32
	Gen           uint32
	CorrelationID uint64
	Endpoint      string
	Function      string
	Version       string
	InputType     string // type URL of the google.protobuf.Any input
	Input         []byte // value of the input Any: the original input
	CreatedAt     time.Time
	ExpiresAt     time.Time
	UpdatedAt     time.Time
	State         CallState
	Attempts      int // attempts since the call was made, all generations
	Restarts      int // restarts from the original input (INCOMPATIBLE_STATE)

	// Suspended calls.
	// StateType is the type URL of typed_coroutine_state, or "" when the
	// poll carried the untyped coroutine_state bytes.
	StateType      string
	CoroutineState []byte
	MinResults     int32
	MaxResults     int32
	PollDeadline   time.Time
	PollError      []byte // marshaled dispatch.sdk.v1.Error to deliver on resume

	// RecentAttempts are the call's latest attempts that are not in the
	// attempts table yet, encoded by [AppendAttempt] (see attempts.go);
	// [Store.Attempts] returns them after the table's.
	RecentAttempts []byte

	// Done calls (State == Done), and the last failure of live ones.
	Status int32  // dispatch.sdk.v1.Status
	Output []byte // marshaled google.protobuf.Any
	Error  []byte // marshaled dispatch.sdk.v1.Error

	// Rewrite says that an earlier row of the call had the same identity
	// (ParentID, RootID, ParentGen, CorrelationID, CreatedAt, which never
	// change, and Endpoint, Function, Version, InputType and Input, which
	// change only with a tail call): a store may write only the other
	// columns. It is a hint, not a promise that the earlier row was
	// committed: a store that uses it must write the whole row when it
	// finds none (sqlitestore does; the others write every row whole).
	Rewrite bool
}

// Result is a child's final CallResult waiting in its parent's inbox.
type Result struct {
	ParentID  string
	ParentGen uint32
	ChildID   string
	Seq       int64  // arrival order within the parent's inbox
	Data      []byte // marshaled dispatch.sdk.v1.CallResult
}

// ResultKey names one inbox entry.
type ResultKey struct {
	ParentID string
	ChildID  string
}

// Attempt is one Run request made for a call, kept for inspection.
type Attempt struct {
	CallID   string
	N        int // 1-based, across the call's life
	Start    time.Time
	Duration time.Duration
	Status   int32  // dispatch.sdk.v1.Status of the outcome
	Outcome  string // "exit", "poll", "tail_call", "retry", "restart" or an error
}

// Batch is one atomic change.
type Batch struct {
	Calls     []*Call     // upserted, whole rows
	Results   []Result    // added to inboxes
	Delivered []ResultKey // removed from inboxes
	// ClearInbox names calls whose whole inbox is dropped (the call is done
	// or started a new generation).
	ClearInbox []string
	// Attempts are added to the attempts table (the scheduler moves a
	// call's RecentAttempts there a group at a time).
	Attempts []Attempt
	// Meta sets server-wide values (see [Store.Meta]), such as
	// [MetaDefaultEndpoint], in the same transaction as the rest.
	Meta map[string]string
	// PruneKeys, when not zero, deletes the idempotency keys whose
	// ExpiresAt is at or before it (keys.go). It is applied before the
	// batch's Keys.
	PruneKeys time.Time
	// Keys are idempotency keys upserted, whole rows, in the same
	// transaction as the calls they name.
	Keys []Key
}

// Empty reports whether b changes nothing.
func (b *Batch) Empty() bool {
	return len(b.Calls) == 0 && len(b.Results) == 0 && len(b.Delivered) == 0 &&
		len(b.ClearInbox) == 0 && len(b.Attempts) == 0 && len(b.Meta) == 0 &&
		b.PruneKeys.IsZero() && len(b.Keys) == 0
}

// MetaDefaultEndpoint is the [Store.Meta] key under which the server keeps
// the default endpoint it last ran with, so that a restart with another
// default can move the calls still bound to the previous one.
const MetaDefaultEndpoint = "default_endpoint"

// ListOptions filter [Store.ListCalls].
type ListOptions struct {
	Limit    int       // most recent first; 0 means 100
	RootOnly bool      // only calls without a parent
	Before   time.Time // only calls created before, if set
}

// Store keeps calls durable. Implementations are safe for concurrent use;
// Apply is called from one goroutine at a time by [Committer].
type Store interface {
	// Apply applies the batches, in order, atomically: after it returns
	// nil all of them are durable, after an error none is.
	Apply(ctx context.Context, batches ...*Batch) error
	// Recover calls fn for every call that is not Done, oldest first, with
	// its inbox in arrival order.
	Recover(ctx context.Context, fn func(c *Call, inbox []Result) error) error
	// GetCall returns one call, or ErrNotFound.
	GetCall(ctx context.Context, id string) (*Call, error)
	// ListCalls returns recent calls, newest first.
	ListCalls(ctx context.Context, opts ListOptions) ([]*Call, error)
	// Children returns the calls whose parent is id, oldest first.
	Children(ctx context.Context, id string) ([]*Call, error)
	// Attempts returns the attempts made for id, in order: those of the
	// attempts table, then those of the call's RecentAttempts.
	Attempts(ctx context.Context, id string) ([]Attempt, error)
	// Meta returns the value last set for key by a Batch, or "" if none.
	Meta(ctx context.Context, key string) (string, error)
	// Key returns the idempotency key key as last stored, expired or
	// not, or [ErrNoKey].
	Key(ctx context.Context, key string) (*Key, error)
	// Close releases the store.
	Close() error
}
