package faulttest

import (
	"github.com/portledger/portledger/internal/ledgertest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/matryer/is"
	"github.com/portledger/portledger/ledger"
)

// TestReadOnlyDataDir makes the data directory's file system read-only (a
// tmpfs remounted ro). Linux refuses that remount while a daemon holds the
// ledger open for writing, so the test checks the refusal and then does it
// with the daemon stopped: `ledger serve` and writing commands fail with a
// clear error, no file changes, and once the file system is writable again
// everything works and the log passes bbolt's check.
func TestReadOnlyDataDir(t *testing.T) {
	is := is.New(t)
	data := mountTmpfs(t, "8m")
	d := startDaemon(t, data)
	status, _ := allocateHTTP(t, d, "before")
	is.Equal(status, 201) // allocate while writable
	if err := remount(t, data, "ro"); err == nil {
		// Some kernels may allow it; then the daemon must refuse writes.
		status, b := allocateHTTP(t, d, "readonly")
		is.Equal(status, 500) // a read-only disk is the server's trouble
		_, ok := decodeError(b)
		is.True(ok) // with the JSON error
		is.NoErr(remount(t, data, "rw"))
	} else {
		t.Logf("while the daemon runs: %v (the kernel keeps a file open for writing writable)", err)
	}
	d.stop(t)

	layout := ledger.Layout{Dir: data}
	sums := map[string][32]byte{}
	for _, p := range []string{layout.DB(), layout.Registry()} {
		sums[p] = fileSum(t, p)
	}
	if err := remount(t, data, "ro"); err != nil {
		t.Fatal(err)
	}

	r := run(t, data, "serve", "--addr", "")
	is.Equal(r.code, 1) // serve refuses
	is.True(strings.HasPrefix(r.err, "ledger: "))
	is.True(strings.Contains(r.err, "read-only")) // and says why
	t.Logf("serve on a read-only disk: %s", strings.TrimSpace(r.err))

	r = run(t, data, "allocate", "--service", "readonly")
	is.Equal(r.code, 1) // allocate refuses
	is.True(strings.Contains(r.err, "read-only"))
	is.Equal(r.out, "")
	t.Logf("allocate on a read-only disk: %s", strings.TrimSpace(r.err))

	r = run(t, data, "status", "--json")
	t.Logf("status on a read-only disk: exit %d %s", r.code, strings.TrimSpace(r.err))
	is.Equal(r.code, 0)                          // reads still work
	is.True(strings.Contains(r.out, `"before"`)) // and show the allocation

	for p, sum := range sums {
		is.Equal(fileSum(t, p), sum) // nothing changed
	}
	entries, err := os.ReadDir(filepath.Dir(layout.Registry()))
	is.NoErr(err)
	is.Equal(len(entries), 1) // no temp file left

	is.NoErr(remount(t, data, "rw"))
	r = run(t, data, "allocate", "--service", "after")
	is.Equal(r.code, 0) // writable again: allocate works
	is.Equal(ledgertest.CheckLog(t, data), uint64(3))
}
