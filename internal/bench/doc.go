// Package bench is `dispatch bench`: standard workloads run against an
// in-process Dispatch server and an in-process SDK endpoint, which the
// server calls in process (local mode's default) or over signed loopback
// HTTP, printed as a table beside the goal of each figure.
//
//	(a) a sequential workflow, one at a time: latency per await step
//	(b) 3-step workflows from concurrent clients: workflows per second
//	(c) a Gather of many calls: total time
//	(d) many workflows suspended on a long sleep: server memory per
//	    workflow, and bytes of coroutine state per step
//	(e) a restart with many calls in flight: time until all have resumed
//	    and finished
//	(f) the floor of signed loopback HTTP: bare signed requests with
//	    net/http on both sides and nothing of Dispatch, which bound (a)
//	    and (b) over HTTP from below
//
// Decisions: the store column of every row names its durability, as a
// fair comparison must: "sqlite (sync=normal)" or "sqlite (sync=full)"
// (Options.Sync, SQLite's synchronous setting), "memory", or PostgreSQL,
// whose own synchronous_commit decides (--sync sets the SQLite rows
// beside it, and is refused with --memory). With Options.LongSteps, (a) alternates
// workflows of Steps and of LongSteps steps on one server, as many long
// ones as make about the same number of steps (at least 3), and prints the
// ratio of their p50s per step: the goal, O(1) per step, is within 10%.
//
// Options.Transport "both" (the default) runs each workload of local mode
// on both transports in every round, in process first, then HTTP: rounds
// outside, lanes (store and transport) inside, so that a spell of load on
// the shared machine weighs on both alike and their figures compare; the
// table's transport column names each row's, and the header the load
// average. PostgreSQL's lane is always over HTTP. The goals follow the
// lane (issue 11): (a) 0.1 ms in process, 0.35 ms over HTTP, 1 ms when
// every commit syncs the disk (SQLite FULL, PostgreSQL); (b) 5,000 wf/s in
// process, 2,000 over HTTP, 1,000 on PostgreSQL with one replica, none
// when every commit of SQLite syncs.
//
// With Options.Replicas (--replicas N, with --postgres), (a) and (b) run
// on PostgreSQL with 1, 2, ... N replicas of one database, each lane with
// a database of its own: the replicas are servers in this process (the
// cost of N processes, minus their HTTP between them: a replica never
// forwards a request without a key), started one after another and
// waited for until the partitions are spread evenly, so that the clock
// measures N replicas at work, not a rebalance. The clients dispatch to
// them round-robin, and wait for a result at the replica they dispatched
// to, which runs the calls of a request without a key in a partition of
// its own (a wait at another would read the call's row until it is done).
// The rate's goal on one replica is issue 9's, 1,000 wf/s; on more, with
// the database on the same machine, none: the figures are reported.
//
// The goals are goals, not tests: the figures move with the machine and
// its load. Package cli parses the command line into [Options] and calls
// [Run]; the workloads, the functions they register (named "bench.*") and
// the table live here.
package bench
