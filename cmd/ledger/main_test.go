package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/portledger/portledger/internal/testbin"
)

// bins builds the real binaries of the end-to-end and `ledger run` tests,
// once for all of them.
var bins testbin.Binaries

func TestMain(m *testing.M) {
	code := m.Run()
	_ = bins.Remove()
	os.Exit(code)
}

// testEnv returns the environment a test hands to Run: the given key, value
// pairs, and HOME in a temporary folder, so that nothing reaches the
// developer's own ledger and tests that share no files can run in parallel.
func testEnv(t testing.TB, kv ...string) func(string) string {
	t.Helper()
	m := map[string]string{"HOME": filepath.Join(t.TempDir(), "home"), "XDG_RUNTIME_DIR": t.TempDir()}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}
