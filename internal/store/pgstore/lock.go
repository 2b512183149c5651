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
// owner of its database, held on a connection of its own.
type ownerLock struct {
	cfg   *pgx.ConnConfig
	where string
	owner string
	epoch int64 // of row 0 of partitions, set when the lock was taken

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

// takeLock connects, takes the lock, migrates the schema (under the lock,
// so that no older server is running on it) and records this owner in row
// 0 of partitions with a new epoch.
func takeLock(ctx context.Context, cfg *pgx.ConnConfig, where, owner string) (*ownerLock, error) {
	l := &ownerLock{cfg: lockConfig(cfg), where: where, owner: owner}
	conn, err := l.connect(ctx)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*ownerLock, error) {
		conn.Close(context.Background())
		return nil, err
	}
	if err := migrate(ctx, conn, where); err != nil {
		return fail(err)
	}
	err = conn.QueryRow(ctx, `INSERT INTO partitions (id, owner, epoch) VALUES (0, $1, 1)
		ON CONFLICT (id) DO UPDATE SET owner = excluded.owner, epoch = partitions.epoch + 1, lease_until = NULL
		RETURNING epoch`, owner).Scan(&l.epoch)
	if err != nil {
		return fail(fmt.Errorf("pgstore: recording the owner of %s: %w", where, err))
	}
	l.conn = conn
	return l, nil
}

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
// *LockedError when another session holds it.
func (l *ownerLock) connect(ctx context.Context) (*pgx.Conn, error) {
	conn, err := pgx.ConnectConfig(ctx, l.cfg)
	if err != nil {
		return nil, fmt.Errorf("pgstore: connecting to %s: %w", l.where, err)
	}
	var ok bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1, hashtext(current_schema()))`, lockClassOwner).Scan(&ok); err != nil {
		conn.Close(context.Background())
		return nil, fmt.Errorf("pgstore: locking %s: %w", l.where, err)
	}
	if !ok {
		owner, _ := currentOwner(ctx, conn)
		conn.Close(context.Background())
		return nil, &LockedError{Where: l.where, Owner: owner}
	}
	return conn, nil
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
	case errors.As(err, &locked):
		l.setGone(fmt.Errorf("%w, which it took while this server's lock was lost: this server writes nothing more; stop one of them", locked))
		return
	case err != nil:
		return // still unreachable: try again at the next check
	}
	var epoch int64
	if err := conn.QueryRow(ctx, `SELECT epoch FROM partitions WHERE id = 0`).Scan(&epoch); err != nil {
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

// close stops the watch and releases the lock (by ending its session).
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
	// Unlocked explicitly: the session's end frees the lock too, but the
	// backend ends after the connection closes, so a store opened at once
	// (a restart) could still find it held. A failure is the session's
	// end anyway.
	conn.Exec(ctx, `SELECT pg_advisory_unlock($1, hashtext(current_schema()))`, lockClassOwner)
	return conn.Close(ctx)
}
