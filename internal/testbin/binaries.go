// Package testbin builds the real `ledger` binary for the tests that drive
// it as a user would (cmd/ledger's end-to-end and `ledger run` tests,
// internal/crashtest, internal/faulttest), and holds the small helpers those
// tests share: running a command to the end, starting a daemon and
// stopping it (Serve, StartDaemon), a free loopback address, polling for a
// condition, a buffer that a process writes while a test reads it.
//
// A Binaries builds each program at most once per test process, into a
// temporary directory that the package's TestMain removes:
//
//	var bins testbin.Binaries
//
//	func TestMain(m *testing.M) {
//		code := m.Run()
//		_ = bins.Remove()
//		os.Exit(code)
//	}
//
//	func TestSomething(t *testing.T) {
//		cmd := bins.Command(t, t.TempDir(), "30500-30600", "status")
//		out, errOut, code := testbin.Run(t, cmd)
//		...
//	}
//
// Programs are built from the module root whatever the package directory of
// the test, so `./cmd/ledger` means the same binary to every caller.
package testbin

import (
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// LedgerPkg is the package of the ledger binary, relative to the module root.
const LedgerPkg = "./cmd/ledger"

// TempPrefix begins the name of the temporary directory of a Binaries.
const TempPrefix = "ledger-testbin-"

// Binaries builds main packages of the module, each at most once, into one
// temporary directory. Declare one per test package and call Remove from its
// TestMain. The zero Binaries is ready to use and safe for concurrent use.
type Binaries struct {
	dirOnce sync.Once
	dir     string // the temporary directory; "" until made
	root    string // the module root
	dirErr  error

	mu     sync.Mutex
	builds map[string]*build     // by package
	ranges map[string]*sync.Once // by data directory and range: setRange
}

// build is one program, built once.
type build struct {
	once sync.Once
	path string
	err  error
}

// Ledger returns the path of the ledger binary, building it on first use.
// It fails tb if the build failed.
func (b *Binaries) Ledger(tb testing.TB) string {
	tb.Helper()
	return b.Program(tb, LedgerPkg)
}

// Program returns the path of the binary of pkg, a main package given
// relative to the module root (such as "./cmd/ledger/testdata/runchild"),
// building it on first use. It fails tb if the build failed.
func (b *Binaries) Program(tb testing.TB, pkg string) string {
	tb.Helper()
	p, err := b.Build(pkg)
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// Build returns the path of the binary of pkg, a main package given relative
// to the module root, building it on first use. The binary is named after
// the last element of pkg, so two packages of one Binaries need different
// last elements. A failed build is not retried: every call returns its
// error. Build is for callers without a testing.TB, such as TestMain.
func (b *Binaries) Build(pkg string) (string, error) {
	b.mu.Lock()
	if b.builds == nil {
		b.builds = map[string]*build{}
	}
	name := path.Base(pkg)
	for other := range b.builds {
		if other != pkg && path.Base(other) == name {
			b.mu.Unlock()
			return "", fmt.Errorf("build %s: %s is built already under the name %q", pkg, other, name)
		}
	}
	bd := b.builds[pkg]
	if bd == nil {
		bd = &build{}
		b.builds[pkg] = bd
	}
	b.mu.Unlock()

	bd.once.Do(func() {
		if err := b.makeDir(); err != nil {
			bd.err = fmt.Errorf("build %s: %w", pkg, err)
			return
		}
		out := filepath.Join(b.dir, name)
		cmd := exec.Command("go", "build", "-o", out, pkg)
		cmd.Dir = b.root
		if msg, err := cmd.CombinedOutput(); err != nil {
			bd.err = fmt.Errorf("go build %s: %v\n%s", pkg, err, msg)
			return
		}
		bd.path = out
	})
	return bd.path, bd.err
}

// makeDir finds the module root and makes the temporary directory, once.
func (b *Binaries) makeDir() error {
	b.dirOnce.Do(func() {
		if b.root, b.dirErr = moduleRoot(); b.dirErr != nil {
			return
		}
		dir, err := os.MkdirTemp("", TempPrefix)
		b.mu.Lock()
		b.dir, b.dirErr = dir, err
		b.mu.Unlock()
	})
	return b.dirErr
}

// moduleRoot returns the directory of the go.mod of the current directory's
// module.
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("go env GOMOD: not inside a module")
	}
	return filepath.Dir(gomod), nil
}

// Remove deletes the temporary directory and the binaries in it, if it was
// made. TestMain calls it after the tests have run; the paths returned
// before are invalid afterwards.
func (b *Binaries) Remove() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.dir == "" {
		return nil
	}
	return os.RemoveAll(b.dir)
}
