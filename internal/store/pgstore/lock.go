package pgstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// How the lock's connection is watched (see the package documentation).
const (
	lockCheckEvery = 2 * time.Second
	lockTimeout    = 5 * time.Second // for one check, or one try to take the lock back
)

// ownerLock is the session-level advisory lock that makes a store the only
// owner of its database (exclusive), or a replica one of the cluster that
// owns it (shared), held on a connection of its own.
type ownerLock struct {
	cfg    *pgx.ConnConfig
	where  string
	owner  string
	shared bool
	// epoch is that of row 0 of partitions when the lock was taken: the
	// one a single owner set (0 if none ever did). Every single owner
	// bumps it, so a lock taken back with another epoch means that a
	// single owner had the database meanwhile.
	epoch int64

	checking sync.Mutex // one check at a time

	mu   sync.Mutex
	conn *pgx.Conn // nil while the lock is lost
	// lost is why Apply must not write: the lock is lost for now (conn is
	// nil), or for good (gone is set).
	lost error
	gone bool

	stop chan struct{}
	done chan struct{}
}

// takeLock connects, takes the lock (shared: a replica's), migrates the
// schema (under the lock, so that no older server is running on it) and,
// in the migration's transaction: a single owner records itself in row 0
// of partitions with a new epoch, and bumps the epoch of every partition
// of a cluster, so that a replica whose lock was lost unnoticed writes
// nothing more (its fence fails); a replica runs after, then reads row 0's
// epoch.
func takeLock(ctx context.Context, cfg *pgx.ConnConfig, where, owner string, shared bool, after func(pgx.Tx) error) (*ownerLock, error) {
	l := &ownerLock{cfg: lockConfig(cfg), where: where, owner: owner, shared: shared}
	conn, err := l.connect(ctx)
	if err != nil {
		return nil, err
	}
	err = migrate(ctx, conn, where, func(tx pgx.Tx) error {
		if shared {
			if after != nil {
				if err := after(tx); err != nil {
					return err
				}
			}
			if err := tx.QueryRow(ctx, sqlEpoch0).Scan(&l.epoch); err != nil {
				return fmt.Errorf("pgstore: reading the owner of %s: %w", where, err)
			}
			return nil
		}
		err := tx.QueryRow(ctx, `INSERT INTO partitions (id, owner, epoch) VALUES (0, $1, 1)
			ON CONFLICT (id) DO UPDATE SET owner = excluded.owner, epoch = partitions.epoch + 1, lease_until = NULL
			RETURNING epoch`, owner).Scan(&l.epoch)
		if err == nil {
			_, err = tx.Exec(ctx, `UPDATE partitions SET epoch = epoch + 1, lease_until = NULL WHERE id > 0`)
		}
		if err != nil {
			return fmt.Errorf("pgstore: recording the owner of %s: %w", where, err)
		}
		return nil
	})
	if err != nil {
		conn.Close(context.Background())
		return nil, err
	}
	l.conn = conn
	return l, nil
}

// sqlEpoch0 reads the epoch of row 0 of partitions, 0 when there is none.
const sqlEpoch0 = `SELECT coalesce(max(epoch), 0) FROM partitions WHERE id = 0`

// lockConfig is cfg for the lock's connection: PostgreSQL's keepalives on
// it find a vanished server in about 25 seconds (10 s idle, then 3 probes
// 5 s apart) and end its session, which frees the lock.
func lockConfig(cfg *pgx.ConnConfig) *pgx.ConnConfig {
	c := cfg.Copy()
	c.RuntimeParams["tcp_keepalives_idle"] = "10"
	c.RuntimeParams["tcp_keepalives_interval"] = "5"
	c.RuntimeParams["tcp_keepalives_count"] = "3"
	c.RuntimeParams["application_name"] = cfg.RuntimeParams["application_name"] + " (lock)"
	return c
}

// connect opens a connection and takes the lock on it; it fails with a
// *LockedError when another session holds it: a single owner, or (for a
// single owner) the replicas of a cluster.
func (l *ownerLock) connect(ctx context.Context) (*pgx.Conn, error) {
	conn, err := pgx.ConnectConfig(ctx, l.cfg)
	if err != nil {
		return nil, fmt.Errorf("pgstore: connecting to %s: %w", l.where, err)
	}
	q := `SELECT pg_try_advisory_lock($1, hashtext(current_schema()))`
	if l.shared {
		q = `SELECT pg_try_advisory_lock_shared($1, hashtext(current_schema()))`
	}
	var ok bool
	if err := conn.QueryRow(ctx, q, lockClassOwner).Scan(&ok); err != nil {
		conn.Close(context.Background())
		return nil, fmt.Errorf("pgstore: locking %s: %w", l.where, err)
	}
	if !ok {
		locked := &LockedError{Where: l.where, replica: l.shared, epoch0: -1}
		_ = conn.QueryRow(ctx, sqlEpoch0).Scan(&locked.epoch0) // -1 if unknown
		if !l.shared {
			locked.Replicas, _ = sharedHolders(ctx, conn)
		}
		if locked.Replicas == 0 {
			locked.Owner, _ = currentOwner(ctx, conn)
		}
		conn.Close(context.Background())
		return nil, locked
	}
	return conn, nil
}

// sharedHolders counts the sessions that hold the owner lock shared: the
// replicas of a cluster.
func sharedHolders(ctx context.Context, conn *pgx.Conn) (int, error) {
	var n int
	err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_locks
		WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
		AND classid = $1::integer::oid AND objid = hashtext(current_schema())::oid AND objsubid = 2
		AND mode = 'ShareLock' AND granted`, lockClassOwner).Scan(&n)
	return n, err
}

// currentOwner reads who recorded itself as the owner, "" if none did.
func currentOwner(ctx context.Context, conn *pgx.Conn) (string, error) {
	if v, err := readVersion(ctx, conn); err != nil || v == 0 {
		return "", err
	}
	var owner string
	err := conn.QueryRow(ctx, `SELECT owner FROM partitions WHERE id = 0`).Scan(&owner)
	return owner, err
}

// err is why Apply must not write, or nil while the lock is held.
func (l *ownerLock) err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lost
}

// watch checks the lock's connection every lockCheckEvery until close.
func (l *ownerLock) watch() {
	l.stop, l.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(l.done)
		t := time.NewTicker(lockCheckEvery)
		defer t.Stop()
		for {
			select {
			case <-l.stop:
				return
			case <-t.C:
				l.check()
			}
		}
	}()
}

// check pings the lock's connection; when it fails, the lock is lost until
// a new connection takes it back with the epoch unchanged.
func (l *ownerLock) check() {
	l.checking.Lock()
	defer l.checking.Unlock()
	l.mu.Lock()
	conn, gone := l.conn, l.gone
	l.mu.Unlock()
	if gone {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), lockTimeout)
	defer cancel()
	if conn != nil {
		if conn.Ping(ctx) == nil {
			return
		}
		conn.Close(context.Background())
		l.mu.Lock()
		l.conn = nil
		l.lost = fmt.Errorf("pgstore: this server's connection holding the lock on %s failed: it writes nothing until it has taken the lock back", l.where)
		l.mu.Unlock()
		return // the next check tries to take it back
	}
	conn, err := l.connect(ctx)
	var locked *LockedError
	switch {
	case errors.As(err, &locked) && locked.epoch0 == l.epoch:
		// Held, and no single owner recorded itself since this one took
		// the lock: the holder is this server's own session, terminated
		// but not yet gone (its client hears of its end before it has
		// released its locks), or a new owner about to record itself
		// (which the next check finds).
		return
	case errors.As(err, &locked):
		l.setGone(fmt.Errorf("%w, which it took while this server's lock was lost: this server writes nothing more; stop one of them", locked))
		return
	case err != nil:
		return // still unreachable: try again at the next check
	}
	var epoch int64
	if err := conn.QueryRow(ctx, sqlEpoch0).Scan(&epoch); err != nil {
		conn.Close(context.Background())
		return
	}
	if epoch != l.epoch {
		conn.Close(context.Background())
		l.setGone(fmt.Errorf("pgstore: another Dispatch server owned %s while this server's lock was lost (epoch %d, this server's %d): this server writes nothing more; restart it", l.where, epoch, l.epoch))
		return
	}
	l.mu.Lock()
	l.conn, l.lost = conn, nil
	l.mu.Unlock()
}

func (l *ownerLock) setGone(err error) {
	l.mu.Lock()
	l.gone, l.lost = true, err
	l.mu.Unlock()
}

// close stops the watch and releases the lock: explicitly first, since
// ending the session releases it only once the server has noticed the
// connection closed, after close returns, and a store opened right after
// (a restart) would find it still held.
func (l *ownerLock) close() error {
	if l.stop != nil {
		close(l.stop)
		<-l.done
	}
	l.mu.Lock()
	conn := l.conn
	l.conn = nil
	if l.lost == nil {
		l.lost = errors.New("pgstore: closed")
	}
	l.mu.Unlock()
	if conn == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), lockTimeout)
	defer cancel()
	// An error here (a lost connection) leaves the lock to the session's end.
	q := `SELECT pg_advisory_unlock($1, hashtext(current_schema()))`
	if l.shared {
		q = `SELECT pg_advisory_unlock_shared($1, hashtext(current_schema()))`
	}
	_, _ = conn.Exec(ctx, q, lockClassOwner)
	return conn.Close(ctx)
}
