package httpapi

import (
	"os/exec"
	"testing"
)

// sleeper starts a process that is not this one (the ledger refuses its own
// pid), for tests that register a live pid; it ends with the test.
func sleeper(tb testing.TB) int {
	tb.Helper()
	cmd := exec.Command("sleep", "300")
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start sleep: %v", err)
	}
	tb.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return cmd.Process.Pid
}
