package cli_test

import (
	"database/sql"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/matryer/is"
	_ "modernc.org/sqlite" // the database, checked after the kills
)

// TestCrashRecovery kills a real server process with SIGKILL in the middle
// of workflows and checks that a restart on the same state directory
// finishes every one of them.
func TestCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the dispatch binary")
	}
	is := is.New(t)
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "dispatch")
	build := exec.Command("go", "build", "-o", bin, "github.com/dispatchkit/dispatch/cmd/dispatch")
	build.Stderr = os.Stderr
	is.NoErr(build.Run())

	state := filepath.Join(tmp, "state")
	const workflows, steps = 200, 3
	ep := newWorkflowEndpoint(t, steps, 2*time.Millisecond)
	start := func() (*exec.Cmd, *syncBuffer, string, string) {
		stdout, stderr := &syncBuffer{}, &syncBuffer{}
		cmd := exec.Command(bin, "test", ep.srv.URL, "--port", "0", "--state", state)
		cmd.Stdout, cmd.Stderr = stdout, stderr
		is.NoErr(cmd.Start())
		t.Cleanup(func() {
			if cmd.ProcessState == nil {
				cmd.Process.Kill()
				cmd.Wait()
			}
		})
		addr, key := waitBanner(t, stdout)
		return cmd, stderr, addr, key
	}

	cmd, _, addr, key := start()
	ep.setKey(t, key)
	ids := dispatchWorkflows(t, addr, "test", workflows)
	// Killed twice mid-workflow, the second time after the restart has
	// recovered and run on (commits, and checkpoints of the log, under
	// way at either kill).
	for kill, atSteps := range []int{workflows, 2 * workflows} {
		waitFor(t, "steps to run", func() bool { return ep.stepCount() >= atSteps })
		is.NoErr(cmd.Process.Signal(syscall.SIGKILL))
		cmd.Wait()
		before := ep.finished()
		t.Logf("kill %d: %d of %d workflows finished, %d steps run", kill+1, before, workflows, ep.stepCount())
		is.True(before < workflows) // killed mid-workflow
		var stderr *syncBuffer
		var key2 string
		cmd, stderr, addr, key2 = start()
		is.Equal(key2, key) // the signing key was kept
		if kill == 1 {
			waitFor(t, "every workflow", func() bool { return ep.finished() == workflows })
			for _, id := range ids {
				_, err := fetchResult(t, addr, id) // the outcomes are stored
				is.NoErr(err)
			}
			is.True(strings.Contains(stderr.String(), "recovered calls in flight"))
		}
	}
	is.NoErr(cmd.Process.Signal(syscall.SIGINT))
	is.NoErr(cmd.Wait()) // clean exit on interrupt
	is.Equal(ep.sigErrs, 0)

	// The database came through the kills whole.
	db, err := sql.Open("sqlite", "file:"+filepath.Join(state, "dispatch.db"))
	is.NoErr(err)
	defer db.Close()
	var check string
	is.NoErr(db.QueryRow(`PRAGMA integrity_check`).Scan(&check))
	is.Equal(check, "ok")
	var live int
	is.NoErr(db.QueryRow(`SELECT count(*) FROM calls WHERE state != 3`).Scan(&live))
	is.Equal(live, 0) // every call final in the store too
}
