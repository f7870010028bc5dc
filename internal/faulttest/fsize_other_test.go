//go:build !linux

package faulttest

import "testing"

// setFileSizeLimit needs prlimit(2), which only Linux has: the test that
// calls it skips elsewhere.
func setFileSizeLimit(t testing.TB, pid int, limit uint64) {
	t.Helper()
	t.Skip("changing another process's RLIMIT_FSIZE needs Linux's prlimit(2)")
}
