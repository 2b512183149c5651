package cli_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/matryer/is"
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
	const workflows, steps = 50, 3
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
	dispatchWorkflows(t, addr, "test", workflows)
	waitFor(t, "steps to run", func() bool { return ep.stepCount() >= workflows })
	is.NoErr(cmd.Process.Signal(syscall.SIGKILL))
	cmd.Wait()
	before := ep.finished()
	t.Logf("killed with %d of %d workflows finished, %d steps run", before, workflows, ep.stepCount())
	is.True(before < workflows) // killed mid-workflow

	cmd, stderr, _, key2 := start()
	is.Equal(key2, key)
	waitFor(t, "every workflow", func() bool { return ep.finished() == workflows })
	is.True(strings.Contains(stderr.String(), "recovered calls in flight"))
	is.NoErr(cmd.Process.Signal(syscall.SIGINT))
	is.NoErr(cmd.Wait()) // clean exit on interrupt
	is.Equal(ep.sigErrs, 0)
}
