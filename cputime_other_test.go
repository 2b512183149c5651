//go:build !unix

package dispatch

// processCPU is not measured here: the benchmarks report wall time only.
func processCPU() (int64, bool) { return 0, false }
