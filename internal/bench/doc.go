// Package bench is `dispatch bench`: standard workloads run against an
// in-process Dispatch server and an in-process SDK endpoint talking over
// loopback HTTP, printed as a table beside the goal of each figure.
//
//	(a) a sequential workflow, one at a time: latency per await step
//	(b) 3-step workflows from concurrent clients: workflows per second
//	(c) a Gather of many calls: total time
//	(d) many workflows suspended on a long sleep: server memory per
//	    workflow, and bytes of coroutine state per step
//	(e) a restart with many calls in flight: time until all have resumed
//	    and finished
//
// The goals are goals, not tests: the figures move with the machine and
// its load. Package cli parses the command line into [Options] and calls
// [Run]; the workloads, the functions they register (named "bench.*") and
// the table live here.
package bench
