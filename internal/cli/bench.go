package cli

import (
	"io"

	"github.com/spf13/cobra"

	"github.com/dispatchkit/dispatch/internal/bench"
)

// benchCommand is `dispatch bench`: the flags become a [bench.Options],
// and package bench runs the workloads (an in-process server and an
// in-process SDK endpoint, called in process and over loopback HTTP) and
// prints the table.
func benchCommand(stdout, stderr io.Writer) *cobra.Command {
	o := bench.Options{}
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure an in-process server and SDK endpoint on standard workloads",
		Long: `Run standard workloads against an in-process Dispatch server and an
in-process SDK endpoint (called in process, and over loopback HTTP), and
print what they reach beside the goals:

  (a) a 20-step sequential workflow, one at a time: latency per await step;
      and a 1,000-step one beside it (--long-steps), with the ratio of
      their latencies per step (O(1) per step: within 10%)
  (b) 3-step workflows from 32 concurrent clients: workflows per second
  (c) a Gather of 10,000 calls: total time
  (d) 100,000 workflows suspended on a long sleep: server memory per
      workflow, and bytes of coroutine state per step
  (e) a restart with 10,000 calls in flight: time until all have resumed
      and finished
  (f) the floor of signed loopback HTTP on this machine: bare requests the
      size of a Run, signed and verified as Dispatch's are, with net/http
      on both sides and nothing else (no connect, server or store): the
      least an await step and a 3-step workflow over HTTP can cost, beside
      the http rows of (a) and (b)

The server keeps its calls in SQLite in a temporary directory (--memory
for the memory store; (e) needs SQLite). With --postgres URL, each workload
runs on SQLite (or memory), then again on PostgreSQL, side by side: the
bench makes a database for each workload on that server and drops it
afterwards, so the URL's user needs CREATEDB. --replicas N (with
--postgres) runs (a) and (b) on PostgreSQL again with 2, ... N replicas
of one database (servers in this process, as dispatch serve --postgres
runs them, the partitions spread evenly before the clock starts), the
clients' Dispatch requests spread over them round-robin; the store column
names the replica count. --only picks workloads and
the other flags scale them down. On a shared or noisy machine, --rounds 3
runs each workload three times and prints the median of each figure with
its range.

--sync full makes SQLite sync the disk at every commit (synchronous=FULL:
accepted calls survive a power loss); the default, normal, syncs at
checkpoints (survives a crash of the process). The table's store column
names the mode beside each figure. --sync is refused with --memory; with
--postgres it sets the SQLite rows, while PostgreSQL's own
synchronous_commit decides the durability of its rows.

--transport both (the default) runs every workload of local mode twice per
round, once with the server calling the functions in process (inproc, what
a program in local mode does) and once over signed loopback HTTP (http,
what a separate server does), alternating so that both meet the same load
of the machine; the transport column names each row's. PostgreSQL's rows
are over HTTP. The header prints the load average at the end of the run.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if _, err := o.Check(); err != nil {
				return usageError{err}
			}
			return bench.Run(cmd.Context(), o, stdout, stderr)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Only, "only", "a,b,c,d,e,f", "workloads to run, comma-separated, from a,b,c,d,e,f")
	f.BoolVar(&o.Memory, "memory", false, "use the memory store instead of SQLite")
	f.StringVar(&o.Transport, "transport", "both", "how the local server reaches the endpoint: inproc (calls the functions in process), http (signed loopback HTTP), or both, alternating round by round")
	f.StringVar(&o.Postgres, "postgres", "", "also run each workload on PostgreSQL, in databases made on the server of this URL (postgres://user:password@host:5432/postgres)")
	f.IntVar(&o.Replicas, "replicas", 1, "with --postgres: also run (a) and (b) on 2, ... up to this many replicas of one database, in this process, the clients spreading their requests over them")
	f.StringVar(&o.Dir, "dir", "", "where to make the temporary directory of the SQLite databases (default the system's)")
	f.IntVar(&o.Steps, "steps", 20, "(a) steps of the sequential workflow")
	f.IntVar(&o.Runs, "runs", 50, "(a) sequential workflows measured, one at a time")
	f.IntVar(&o.Clients, "clients", 32, "(b) concurrent clients")
	f.IntVar(&o.Workflows, "workflows", 6000, "(b) 3-step workflows in all")
	f.IntVar(&o.Gather, "gather", 10000, "(c) calls gathered")
	f.IntVar(&o.Sleepers, "sleepers", 100000, "(d) workflows suspended on a sleep")
	f.IntVar(&o.Inflight, "inflight", 10000, "(e) calls in flight at the restart (half workflows, half their calls)")
	f.IntVar(&o.Rounds, "rounds", 1, "run each workload this many times and print the median of each figure, with its range")
	f.BoolVarP(&o.Verbose, "verbose", "v", false, "log the server and the SDK to stderr")
	f.StringVar(&o.Sync, "sync", "", "SQLite's durability: normal (sync at checkpoints; survives a process crash) or full (sync every commit; survives a power loss) (default normal)")
	f.IntVar(&o.LongSteps, "long-steps", 1000, "(a) also run workflows of this many steps, and print their p50 per step beside the --steps one's (0: none)")
	f.StringVar(&o.CPUProfile, "cpuprofile", "", "write a CPU profile of the workloads to this file (go tool pprof)")
	return cmd
}
