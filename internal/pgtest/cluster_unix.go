//go:build unix

package pgtest

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// startCluster starts a throwaway server from the binaries found, or
// returns errNone when there are none.
func startCluster() (*throwaway, error) {
	bin, err := findBin()
	if err != nil {
		return nil, err
	}
	return start(bin)
}

// findBin returns the directory of initdb and postgres: PATH's, else the
// newest of Debian's /usr/lib/postgresql/N/bin.
func findBin() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		dir := filepath.Dir(p)
		if _, err := os.Stat(filepath.Join(dir, "postgres")); err == nil {
			return dir, nil
		}
	}
	found, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	slices.SortFunc(found, func(a, b string) int { return version(b) - version(a) })
	for _, p := range found {
		dir := filepath.Dir(p)
		if _, err := os.Stat(filepath.Join(dir, "postgres")); err == nil {
			return dir, nil
		}
	}
	return "", errNone
}

// version is N of /usr/lib/postgresql/N/bin/initdb.
func version(p string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(p))))
	return n
}

// throwaway is a PostgreSQL server of the test binary's own.
type throwaway struct {
	dir string
	url *url.URL
	cmd *exec.Cmd

	exited  chan struct{} // closed when the server has exited
	waitErr error         // why, once exited is closed
	// stopServer stops the server and the goroutine that started it; it
	// returns once both have ended.
	stopServer func()
}

// start makes a cluster in a temporary directory and starts its server on
// a free loopback port.
func start(bin string) (*throwaway, error) {
	dir, err := os.MkdirTemp(tmpBase(), "dispatch-pgtest-")
	if err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("pgtest: running as root, the throwaway PostgreSQL must run as the postgres user "+
				"(initdb refuses root), and there is none (%v): install the postgresql package, which makes it, or set %s", err, EnvURL)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(dir, uid, gid); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("pgtest: %w", err)
		}
	}
	fail := func(err error) (*throwaway, error) {
		os.RemoveAll(dir)
		return nil, err
	}
	data := filepath.Join(dir, "data")
	// --no-sync: initdb's own files are not synced (the cluster is thrown
	// away); the server it makes still syncs every commit (fsync on).
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres", "-A", "trust",
		"-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	initdb.Dir = dir
	if out, err := initdb.CombinedOutput(); err != nil {
		return fail(fmt.Errorf("pgtest: %s: %v\n%s", initdb, err, out))
	}
	var lastErr error
	for range 3 { // another process may take the free port first
		port, err := freePort()
		if err != nil {
			return fail(err)
		}
		c, err := run(bin, dir, data, port, cred)
		if err == nil {
			return c, nil
		}
		lastErr = err
	}
	return fail(lastErr)
}

// tmpBase is where the server's directory is made: the system's temporary
// directory, unless this process is root and the postgres user could not
// reach into it (a $TMPDIR under /root, say); then /tmp.
func tmpBase() string {
	base := os.TempDir()
	if os.Geteuid() != 0 {
		return base
	}
	for d := base; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil || fi.Mode().Perm()&0o001 == 0 {
			return "/tmp"
		}
		if d == filepath.Dir(d) {
			return base
		}
	}
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pgtest: finding a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// run starts the server and waits until it accepts connections.
func run(bin, dir, data string, port int, cred *syscall.Credential) (*throwaway, error) {
	logPath := filepath.Join(dir, fmt.Sprintf("postgres-%d.log", port))
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	defer logf.Close()
	cmd := exec.Command(filepath.Join(bin, "postgres"), "-D", data, "-p", strconv.Itoa(port),
		"-c", "listen_addresses=127.0.0.1",
		"-c", "unix_socket_directories="+dir,
		"-c", "fsync=on",
		"-c", "synchronous_commit=on",
		"-c", "max_connections=300",
	)
	cmd.Stdout, cmd.Stderr, cmd.Dir = logf, logf, dir
	cmd.SysProcAttr = sysProcAttr(cred)
	c := &throwaway{
		dir:    dir,
		url:    &url.URL{Scheme: "postgres", User: url.User("postgres"), Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), Path: "/postgres", RawQuery: "sslmode=disable"},
		cmd:    cmd,
		exited: make(chan struct{}),
	}
	if err := c.startProcess(); err != nil {
		return nil, fmt.Errorf("pgtest: starting %s: %w", cmd.Path, err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := exec1(ctx, c.url.String(), "SELECT 1")
		cancel()
		if err == nil {
			return c, nil
		}
		select {
		case <-c.exited:
			c.stopServer()
			log, _ := os.ReadFile(logPath)
			return nil, fmt.Errorf("pgtest: the throwaway PostgreSQL exited (%v):\n%s", c.waitErr, tail(string(log)))
		default:
		}
		if time.Now().After(deadline) {
			c.stopServer()
			log, _ := os.ReadFile(logPath)
			return nil, fmt.Errorf("pgtest: the throwaway PostgreSQL does not answer after a minute (%v):\n%s", err, tail(string(log)))
		}
		time.Sleep(50 * time.Millisecond) // polling a process that has no readiness signal
	}
}

func tail(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-20):], "\n")
}

// stop stops the server (fast shutdown: SIGINT, then SIGKILL after 30 s)
// and removes its directory.
func (c *throwaway) stop() error {
	c.stopServer()
	return os.RemoveAll(c.dir)
}

// startProcess starts the server from a goroutine locked to its thread,
// which stays until the server is stopped: on Linux the server gets a
// signal when the thread that started it ends (Pdeathsig), so that a test
// binary that dies (a -timeout panic, kill) takes its server with it.
func (c *throwaway) startProcess() error {
	started := make(chan error, 1)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		if err := c.cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		go func() {
			c.waitErr = c.cmd.Wait()
			close(c.exited)
		}()
		select {
		case <-stop:
		case <-c.exited:
			<-stop
			return
		}
		_ = c.cmd.Process.Signal(os.Interrupt) // fast shutdown
		select {
		case <-c.exited:
		case <-time.After(30 * time.Second):
			_ = c.cmd.Process.Kill()
			<-c.exited
		}
	}()
	if err := <-started; err != nil {
		<-done
		return err
	}
	c.stopServer = sync.OnceFunc(func() {
		close(stop)
		<-done
	})
	return nil
}
