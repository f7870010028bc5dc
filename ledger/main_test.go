package ledger_test

import (
	"os"
	"testing"
)

// TestMain removes the benchmark fixture, if a benchmark built one.
func TestMain(m *testing.M) {
	code := m.Run()
	_ = bench1M.Remove()
	os.Exit(code)
}
