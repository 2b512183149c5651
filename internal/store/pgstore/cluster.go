package pgstore

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/dispatchkit/dispatch/internal/store"
)

// DefaultPartitions is the number of partitions a cluster makes when
// [ClusterOptions.Partitions] is 0: 12 divides evenly among 1, 2, 3, 4
// or 6 replicas.
const DefaultPartitions = 12

// maxPartitions bounds [ClusterOptions.Partitions]: each partition is a
// lease to renew and a scheduler to run, and more partitions than
// replicas by far buys nothing.
const maxPartitions = 1024

// MetaPartitions is the meta key under which a cluster keeps its number
// of partitions, set once, when the first replica makes them.
const MetaPartitions = "partitions"

// ErrLeaseHeld is the error (errors.Is) of [Cluster.Acquire] of a
// partition whose lease is held by a replica (this one included) and not
// expired.
var ErrLeaseHeld = errors.New("pgstore: the partition's lease is held by a replica and not expired: " +
	"acquire another partition, or try again once the lease has expired")

// FencedError is the error of an Apply of the store of a partition, and
// of [Cluster.Renew], whose lease is no longer at its epoch: another
// replica took the partition (or a single-owner store opened the
// database); and of the Apply of a single owner (partition 0) after
// another opened the database. errors.Is(err, store.ErrFenced) is true.
type FencedError struct {
	Partition int   // 0: a single owner's
	Epoch     int64 // the lease's, that is no longer the partition's
}

func (e *FencedError) Error() string {
	if e.Partition == 0 {
		return fmt.Sprintf("pgstore: another Dispatch server opened the database after this one (epoch %d): "+
			"this server writes nothing more; stop one of them, and restart this one if it is to own the database", e.Epoch)
	}
	return fmt.Sprintf("pgstore: partition %d is no longer at this replica's epoch %d: another replica took its lease, "+
		"so this replica writes nothing more to it; acquire the partition again and recover it", e.Partition, e.Epoch)
}

// Is makes errors.Is(err, store.ErrFenced) true.
func (e *FencedError) Is(target error) bool { return target == store.ErrFenced }

// ClusterOptions tune [OpenCluster]. The zero value takes the defaults.
type ClusterOptions struct {
	// MaxConns bounds the connections of the cluster's pool, shared by
	// the stores of all its partitions; [DefaultMaxConns] when zero. The
	// lock takes one more.
	MaxConns int
	// Partitions is the number of partitions the first replica makes,
	// [DefaultPartitions] when zero. Once made it never changes (the
	// partition of a call is a hash of its root id modulo this number):
	// a later OpenCluster with 0 takes the stored number, and one with
	// another number fails, rather than silently run with a number other
	// than the one asked for.
	Partitions int
	// Replica names this replica in the database (the owner of its
	// leases, its heartbeat's row): unique per process; "HOST/pid
	// N/RANDOM" when empty.
	Replica string
}

// Cluster is one replica's handle on a database shared by the replicas of
// a cluster: the leases of its partitions, the replicas' heartbeats, and
// the stores of the partitions it holds, which share its pool.
type Cluster struct {
	pool    *pgxpool.Pool
	where   string
	lock    *ownerLock
	replica string
	n       int
	reader  *Store
	w       *writer // the one writer of all its partitions' stores
	closed  atomic.Bool
}

// OpenCluster connects to the database at dsn as a replica of a cluster.
// It takes the shared form of the owner lock (pg_try_advisory_lock_shared)
// on a connection of its own, so that a single-owner store ([Open], which
// takes it exclusive) and the replicas exclude each other, each with a
// [*LockedError]; migrates the schema; and, under the migration's lock
// (so that replicas opening at once do it once): makes the partitions'
// rows, records their number, and gives every live call left in
// partition 0 by a single-owner store its partition
// ([store.PartitionOf] of its root id). ctx bounds all of it.
//
// The lock's connection is watched as a single owner's is (see the
// package documentation): while it is lost, leases are neither taken nor
// renewed and the partitions' stores write nothing.
func OpenCluster(ctx context.Context, dsn string, opts ClusterOptions) (*Cluster, error) {
	cfg, where, err := parse(dsn)
	if err != nil {
		return nil, err
	}
	switch {
	case opts.MaxConns < 0:
		return nil, fmt.Errorf("pgstore: ClusterOptions.MaxConns is negative (%d); use 0 for the default, %d", opts.MaxConns, DefaultMaxConns)
	case opts.Partitions < 0 || opts.Partitions > maxPartitions:
		return nil, fmt.Errorf("pgstore: ClusterOptions.Partitions is %d; use 1 to %d, or 0 for the default, %d", opts.Partitions, maxPartitions, DefaultPartitions)
	}
	cfg.MaxConns = int32(cmp.Or(opts.MaxConns, DefaultMaxConns))
	if opts.Replica == "" {
		host, _ := os.Hostname()
		var b [4]byte
		_, _ = rand.Read(b[:])
		opts.Replica = fmt.Sprintf("%s/pid %d/%s", host, os.Getpid(), hex.EncodeToString(b[:]))
	}
	c := &Cluster{where: where, replica: opts.Replica}
	lock, err := takeLock(ctx, cfg.ConnConfig, where, opts.Replica, true, func(tx pgx.Tx) error {
		var err error
		c.n, err = setUpPartitions(ctx, tx, where, opts.Partitions)
		return err
	})
	if err != nil {
		return nil, err
	}
	pool, err := openPool(ctx, cfg, where, lock)
	if err != nil {
		return nil, err
	}
	c.pool, c.lock = pool, lock
	c.reader = &Store{pool: pool, where: where, kind: kindClusterReader}
	c.w = newWriter(pool, where, lock)
	lock.watch()
	return c, nil
}

// setUpPartitions makes the partitions' rows if there are none and
// returns their number; gives their partition to the live calls of
// partition 0; and drops the heartbeats of replicas gone for an hour
// (each run makes a new name), so that the table stays small.
func setUpPartitions(ctx context.Context, tx pgx.Tx, where string, want int) (int, error) {
	fail := func(err error) (int, error) {
		return 0, fmt.Errorf("pgstore: setting up the partitions of %s: %w", where, err)
	}
	var n int
	var stored string
	err := tx.QueryRow(ctx, `SELECT value FROM meta WHERE key = $1`, MetaPartitions).Scan(&stored)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		n = cmp.Or(want, DefaultPartitions)
		if _, err := tx.Exec(ctx, `INSERT INTO meta (key, value) VALUES ($1, $2)`, MetaPartitions, strconv.Itoa(n)); err != nil {
			return fail(err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO partitions (id, owner, epoch)
			SELECT g, '', 0 FROM generate_series(1, $1::integer) g ON CONFLICT (id) DO NOTHING`, n); err != nil {
			return fail(err)
		}
	case err != nil:
		return fail(err)
	default:
		n, err = strconv.Atoi(stored)
		if err != nil || n < 1 {
			return 0, fmt.Errorf("pgstore: %s has %q as its number of partitions (meta key %q): set it back to the number its cluster was made with", where, stored, MetaPartitions)
		}
		if want != 0 && want != n {
			return 0, fmt.Errorf("pgstore: %s has %d partitions, made when its cluster first started, and this replica was asked for %d: "+
				"the number cannot change once calls are partitioned; ask for %d, or 0 to take the database's", where, n, want, n)
		}
	}
	// Live calls of partition 0, made by a single-owner store (which no
	// replica can run beside): a few statements on arrays.
	rows, err := tx.Query(ctx, `SELECT id, root_id FROM calls WHERE part = 0 AND NOT done`)
	if err != nil {
		return fail(err)
	}
	var ids []string
	var parts []int32
	for rows.Next() {
		var id, root string
		if err := rows.Scan(&id, &root); err != nil {
			rows.Close()
			return fail(err)
		}
		ids = append(ids, id)
		parts = append(parts, int32(store.PartitionOf(root, n)))
	}
	if err := rows.Err(); err != nil {
		return fail(err)
	}
	const chunk = 10_000
	for i := 0; i < len(ids); i += chunk {
		j := min(i+chunk, len(ids))
		if _, err := tx.Exec(ctx, `UPDATE calls SET part = u.part
			FROM unnest($1::text[], $2::integer[]) AS u (id, part) WHERE calls.id = u.id`, ids[i:j], parts[i:j]); err != nil {
			return fail(err)
		}
	}
	if _, err := tx.Exec(ctx, `DELETE FROM replicas WHERE seen_until < now() - interval '1 hour'`); err != nil {
		return fail(err)
	}
	return n, nil
}

// Partitions returns the number of partitions, N: they are 1..N.
func (c *Cluster) Partitions() int { return c.n }

// Replica returns this replica's name.
func (c *Cluster) Replica() string { return c.replica }

// Lease is a replica's hold on a partition: the epoch that every write of
// the partition's store checks.
type Lease struct {
	Partition int
	Epoch     int64
}

// usable is why c cannot take or renew leases now, or nil.
func (c *Cluster) usable(p int) error {
	if c.closed.Load() {
		return store.ErrClosed
	}
	if p < 1 || p > c.n {
		return fmt.Errorf("pgstore: there is no partition %d in %s: partitions are 1 to %d", p, c.where, c.n)
	}
	return c.lock.err()
}

// micros is ttl in microseconds, for `$n * interval '1 microsecond'`.
func micros(ttl time.Duration) (int64, error) {
	if ttl <= 0 {
		return 0, fmt.Errorf("pgstore: a lease or heartbeat of %v would be expired already: pass a positive time to live", ttl)
	}
	return max(ttl.Microseconds(), 1), nil
}

// Acquire takes the lease of partition p for ttl, if it is not held (it
// was released, or expired, by the database's clock): the partition gets
// a new epoch, which the writes of every store of an earlier lease then
// fail on. It fails with [ErrLeaseHeld] (errors.Is) while the lease is
// held, by another replica or this one (which renews it instead).
//
// One UPDATE: it waits for the transactions of the previous owner that
// hold the partition's row (their fence), so that what they committed is
// there for the recovery that follows. Times are the database's: the
// clocks of replicas may differ. The lease runs from when the row was
// written (clock_timestamp(), not now(), which is when the statement
// started, before any wait).
func (c *Cluster) Acquire(ctx context.Context, p int, ttl time.Duration) (Lease, error) {
	if err := c.usable(p); err != nil {
		return Lease{}, err
	}
	us, err := micros(ttl)
	if err != nil {
		return Lease{}, err
	}
	l := Lease{Partition: p}
	err = c.pool.QueryRow(ctx, `UPDATE partitions
		SET owner = $2, epoch = epoch + 1, lease_until = clock_timestamp() + $3 * interval '1 microsecond'
		WHERE id = $1 AND (lease_until IS NULL OR lease_until < clock_timestamp())
		RETURNING epoch`, int32(p), c.replica, us).Scan(&l.Epoch)
	if errors.Is(err, pgx.ErrNoRows) {
		var owner string
		err := c.pool.QueryRow(ctx, `SELECT owner, coalesce(extract(epoch FROM lease_until - clock_timestamp()) * 1e6, 0)::bigint
			FROM partitions WHERE id = $1`, int32(p)).Scan(&owner, &us)
		if err != nil {
			return Lease{}, fmt.Errorf("pgstore: partition %d of %s: %w", p, c.where, ErrLeaseHeld)
		}
		left := time.Duration(us) * time.Microsecond
		return Lease{}, fmt.Errorf("pgstore: partition %d of %s is leased to %s for %v more: %w", p, c.where, owner, left.Round(time.Millisecond), ErrLeaseHeld)
	}
	if err != nil {
		return Lease{}, fmt.Errorf("pgstore: acquiring partition %d of %s: %w", p, c.where, err)
	}
	return l, nil
}

// Renew extends lease l to ttl from now (the database's clock). It fails
// with a [*FencedError] when the partition's epoch moved (another
// replica acquired it, or this one released it): the lease is lost. A
// lease that expired but that no replica took is renewed: its epoch is
// still the partition's, so nothing was written by another meanwhile.
func (c *Cluster) Renew(ctx context.Context, l Lease, ttl time.Duration) error {
	if err := c.usable(l.Partition); err != nil {
		return err
	}
	us, err := micros(ttl)
	if err != nil {
		return err
	}
	tag, err := c.pool.Exec(ctx, `UPDATE partitions SET lease_until = clock_timestamp() + $3 * interval '1 microsecond'
		WHERE id = $1 AND epoch = $2`, int32(l.Partition), l.Epoch, us)
	if err != nil {
		return fmt.Errorf("pgstore: renewing the lease of partition %d of %s: %w", l.Partition, c.where, err)
	}
	if tag.RowsAffected() == 0 {
		return &FencedError{Partition: l.Partition, Epoch: l.Epoch}
	}
	return nil
}

// Release gives lease l up, so that another replica can acquire the
// partition at once. It also moves the partition's epoch on: the stores
// of l write nothing more (after the transactions in flight, which it
// waits for), as if another replica had taken it. It returns nil when the
// lease was already lost.
func (c *Cluster) Release(ctx context.Context, l Lease) error {
	if c.closed.Load() {
		return store.ErrClosed
	}
	_, err := c.pool.Exec(ctx, `UPDATE partitions SET epoch = epoch + 1, lease_until = NULL
		WHERE id = $1 AND epoch = $2`, int32(l.Partition), l.Epoch)
	if err != nil {
		return fmt.Errorf("pgstore: releasing partition %d of %s: %w", l.Partition, c.where, err)
	}
	return nil
}

// LeaseInfo is the state of one partition's lease.
type LeaseInfo struct {
	Partition int
	Owner     string // the replica that took it last ("" if none ever did)
	Epoch     int64
	Held      bool // not released, not expired (by the database's clock)
}

// Leases returns the leases of partitions 1..N, in order.
func (c *Cluster) Leases(ctx context.Context) ([]LeaseInfo, error) {
	if c.closed.Load() {
		return nil, store.ErrClosed
	}
	rows, err := c.pool.Query(ctx, `SELECT id, owner, epoch, coalesce(lease_until > clock_timestamp(), false)
		FROM partitions WHERE id BETWEEN 1 AND $1 ORDER BY id`, int32(c.n))
	if err != nil {
		return nil, fmt.Errorf("pgstore: reading the leases of %s: %w", c.where, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (LeaseInfo, error) {
		var li LeaseInfo
		err := row.Scan(&li.Partition, &li.Owner, &li.Epoch, &li.Held)
		return li, err
	})
	if err != nil {
		return nil, fmt.Errorf("pgstore: reading the leases of %s: %w", c.where, err)
	}
	return out, nil
}

// ReplicaInfo is a live replica, as its heartbeat describes it.
type ReplicaInfo struct {
	Name string
	URL  string // where other replicas reach it
}

// Heartbeat records that this replica is alive, reachable at url, for ttl
// from now (the database's clock).
func (c *Cluster) Heartbeat(ctx context.Context, url string, ttl time.Duration) error {
	if c.closed.Load() {
		return store.ErrClosed
	}
	us, err := micros(ttl)
	if err != nil {
		return err
	}
	_, err = c.pool.Exec(ctx, `INSERT INTO replicas (name, url, seen_until) VALUES ($1, $2, clock_timestamp() + $3 * interval '1 microsecond')
		ON CONFLICT (name) DO UPDATE SET url = excluded.url, seen_until = excluded.seen_until`, c.replica, url, us)
	if err != nil {
		return fmt.Errorf("pgstore: recording the heartbeat of replica %s in %s: %w", c.replica, c.where, err)
	}
	return nil
}

// Leave deletes this replica's heartbeat: the others see it gone at once.
func (c *Cluster) Leave(ctx context.Context) error {
	if c.closed.Load() {
		return store.ErrClosed
	}
	if _, err := c.pool.Exec(ctx, `DELETE FROM replicas WHERE name = $1`, c.replica); err != nil {
		return fmt.Errorf("pgstore: deleting the heartbeat of replica %s in %s: %w", c.replica, c.where, err)
	}
	return nil
}

// Replicas returns the live replicas (heartbeat not expired), by name.
func (c *Cluster) Replicas(ctx context.Context) ([]ReplicaInfo, error) {
	if c.closed.Load() {
		return nil, store.ErrClosed
	}
	rows, err := c.pool.Query(ctx, `SELECT name, url FROM replicas WHERE seen_until > clock_timestamp() ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("pgstore: reading the replicas of %s: %w", c.where, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (ReplicaInfo, error) {
		var r ReplicaInfo
		err := row.Scan(&r.Name, &r.URL)
		return r, err
	})
	if err != nil {
		return nil, fmt.Errorf("pgstore: reading the replicas of %s: %w", c.where, err)
	}
	return out, nil
}

// Store returns the store of the partition of lease l, on the cluster's
// pool. Its Apply hands its batches to the cluster's one writer, which
// writes the Applies of all the partitions waiting in one transaction
// (see the package documentation); each checks the lease's epoch first,
// in that transaction (dispatch_fence: see schemaV3), and fails with a
// [*FencedError] for good once the epoch moved, without failing the
// Applies of other partitions. It writes l.Partition as the partition of
// the calls it makes (the caller routes calls by [store.PartitionOf] of
// their root id). Recover yields that partition's live calls only. Reads
// (GetCall, ListCalls, Children, Attempts, Meta, Key) are global, as
// those of a single owner. Its Close does not close the cluster's pool.
//
// Use one store, written by one [store.Committer], per lease: its Apply
// calls run one at a time, in order. With the one writer, the fence's
// row lock has one holder at a time; several clusters (or single-owner
// stores) writing one partition at once would share the row's lock,
// which PostgreSQL records as a MultiXact (more I/O, and more for
// vacuum).
func (c *Cluster) Store(l Lease) store.Store {
	return &Store{pool: c.pool, where: c.where, kind: kindPartition, w: c.w,
		sc: scope{part: l.Partition, epoch: l.Epoch}}
}

// Reader returns a store that reads across all partitions (for Result
// and inspection on a replica that may own none); its Apply and Recover
// fail.
func (c *Cluster) Reader() store.Store { return c.reader }

// SigningKey is [Store.SigningKey]: the key the replicas share, made by
// the first that needs it.
func (c *Cluster) SigningKey(ctx context.Context, generate func() (string, error)) (string, bool, error) {
	if c.closed.Load() {
		return "", false, store.ErrClosed
	}
	return signingKey(ctx, c.pool, c.where, true, generate)
}

// Close closes the pool, so the stores of its partitions, and releases
// the lock. The Applies waiting for the writer fail with store.ErrClosed;
// the transaction in flight, if any, ends first. It does not release the
// leases (they expire) nor delete the heartbeat: Release and Leave first
// hand them over at once.
func (c *Cluster) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	c.w.close()
	c.pool.Close()
	return c.lock.close()
}
