package bench

import (
	"fmt"
	"strings"
)

// Options are the flags of `dispatch bench`: which workloads run, on which
// store, and at what scale. The flag of each field is named in its
// comment; [Options.Check] names the flag at fault.
type Options struct {
	Only       string // --only: workloads to run, comma-separated, from a,b,c,d,e,f
	Memory     bool   // --memory: the memory store instead of SQLite
	Postgres   string // --postgres: also run each workload on PostgreSQL, in databases made on the server of this URL
	Dir        string // --dir: where to make the temporary directory of the SQLite databases ("": the system's)
	Steps      int    // --steps: (a) steps of the sequential workflow
	Runs       int    // --runs: (a) sequential workflows measured, one at a time
	Clients    int    // --clients: (b) concurrent clients
	Workflows  int    // --workflows: (b) 3-step workflows in all
	Gather     int    // --gather: (c) calls gathered
	Sleepers   int    // --sleepers: (d) workflows suspended on a sleep
	Inflight   int    // --inflight: (e) calls in flight at the restart (half workflows, half their calls)
	Rounds     int    // --rounds: runs of each workload; the table shows the median of each figure, with its range
	Verbose    bool   // --verbose: log the server and the SDK to stderr
	CPUProfile string // --cpuprofile: write a CPU profile of the workloads to this file
	Sync       string // --sync: normal or full, SQLite's synchronous setting ("": normal)
	LongSteps  int    // --long-steps: (a) steps of the long sequential workflow run beside the Steps one (0: none)
	Replicas   int    // --replicas: with Postgres, also run (a) and (b) on 2, ... Replicas replicas of one database (0 or 1: one replica)
	Transport  string // --transport: how local mode's server reaches the endpoint: inproc (in process), http (signed loopback HTTP) or both ("": both)
}

// transports returns the transports local mode's workloads run on:
// both by default, in process first, so that one run compares them in
// one spell of the machine. Check has validated o.Transport.
func (o *Options) transports() []string {
	switch o.Transport {
	case "inproc", "http":
		return []string{o.Transport}
	}
	return []string{"inproc", "http"}
}

// fullSync reports whether o asks SQLite to sync every commit (--sync
// full). Check has validated o.Sync.
func (o *Options) fullSync() bool { return o.Sync == "full" }

// checkSync validates --sync: normal or full, for the SQLite store. With
// --postgres it sets the SQLite rows only, which run beside the rows on
// PostgreSQL, whose own synchronous_commit decides their durability: so
// SQLite FULL and PostgreSQL with fsync compare in one run.
func (o *Options) checkSync() error {
	switch o.Sync {
	case "", "normal", "full":
	default:
		return fmt.Errorf("--sync %q: want normal (sync at checkpoints: survives a process crash) or full (sync every commit: survives a power loss)", o.Sync)
	}
	if o.Sync == "" {
		return nil
	}
	if o.Memory {
		return fmt.Errorf("--sync %s: --memory keeps no file to sync: leave out --sync or --memory", o.Sync)
	}
	return nil
}

// Check validates o and returns the workloads it selects. Its errors name
// the flag at fault.
func (o *Options) Check() (map[string]bool, error) {
	selected := map[string]bool{}
	for w := range strings.SplitSeq(o.Only, ",") {
		w = strings.TrimSpace(w)
		if w == "" {
			continue
		}
		if len(w) != 1 || w < "a" || w > "f" {
			return nil, fmt.Errorf("--only %q: want workloads among a,b,c,d,e,f, such as --only a,c", o.Only)
		}
		selected[w] = true
	}
	if len(selected) == 0 {
		return nil, fmt.Errorf("--only %q names no workload: want some of a,b,c,d,e,f", o.Only)
	}
	for _, n := range []struct {
		name string
		v    int
	}{
		{"steps", o.Steps}, {"runs", o.Runs}, {"clients", o.Clients}, {"workflows", o.Workflows},
		{"gather", o.Gather}, {"sleepers", o.Sleepers}, {"inflight", o.Inflight}, {"rounds", o.Rounds},
	} {
		if n.v < 1 {
			return nil, fmt.Errorf("--%s %d: want at least 1", n.name, n.v)
		}
	}
	if o.LongSteps < 0 {
		return nil, fmt.Errorf("--long-steps %d: want 0 (no long workflow) or more, such as 1000", o.LongSteps)
	}
	if err := o.checkSync(); err != nil {
		return nil, err
	}
	switch o.Transport {
	case "", "both", "inproc", "http":
	default:
		return nil, fmt.Errorf("--transport %q: want inproc (in process), http (signed loopback HTTP) or both (alternating, round by round)", o.Transport)
	}
	switch {
	case o.Replicas < 0 || o.Replicas > maxReplicas:
		return nil, fmt.Errorf("--replicas %d: want 1 to %d (the replicas of one PostgreSQL database, in this process)", o.Replicas, maxReplicas)
	case o.Replicas > 1 && o.Postgres == "":
		return nil, fmt.Errorf("--replicas %d: the replicas share a PostgreSQL database: give --postgres URL too", o.Replicas)
	}
	if o.Inflight < 2 {
		return nil, fmt.Errorf("--inflight %d: want at least 2 (a workflow and its call)", o.Inflight)
	}
	return selected, nil
}

// maxReplicas bounds --replicas: the 12 partitions of a database, beyond
// which a replica has none to run.
const maxReplicas = 12
