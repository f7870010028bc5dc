package testbin

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/matryer/is"
)

func TestBinariesBuildOnceAndRemove(t *testing.T) {
	is := is.New(t)
	var b Binaries
	// Parallel first uses share one build.
	paths := make([]string, 4)
	errs := make([]error, 4)
	var wg sync.WaitGroup
	for i := range paths {
		wg.Add(1)
		go func() {
			defer wg.Done()
			paths[i], errs[i] = b.Build(LedgerPkg)
		}()
	}
	wg.Wait()
	for i := range paths {
		is.NoErr(errs[i])            // go build
		is.Equal(paths[i], paths[0]) // one binary for every caller
	}
	is.Equal(filepath.Base(paths[0]), "ledger")                                   // named after the package
	is.True(strings.HasPrefix(filepath.Base(filepath.Dir(paths[0])), TempPrefix)) // in a directory of ours

	// The binary is the ledger: it runs and knows its subcommands.
	out, _, code := Run(t, b.Command(t, t.TempDir(), "30900-30910", "status", "--help"))
	is.Equal(code, 0)
	is.True(strings.Contains(out, "Usage: ledger status")) // the ledger's usage

	_, err := b.Build("./internal/other/ledger")
	is.True(err != nil) // another package of the same name is refused, not overwritten

	is.NoErr(b.Remove())
	_, err = os.Stat(filepath.Dir(paths[0]))
	is.True(errors.Is(err, os.ErrNotExist)) // Remove deletes the directory
}

func TestBuildFailureIsReported(t *testing.T) {
	is := is.New(t)
	var b Binaries
	defer b.Remove()
	_, err := b.Build("./no/such/package")
	is.True(err != nil)                                                  // a missing package fails
	is.True(strings.Contains(err.Error(), "go build ./no/such/package")) // naming it
}

func TestRemoveWithoutBuildDoesNothing(t *testing.T) {
	is := is.New(t)
	var b Binaries
	is.NoErr(b.Remove())
}

func TestRun(t *testing.T) {
	is := is.New(t)
	out, errOut, code := Run(t, exec.Command("sh", "-c", "echo out; echo err >&2; exit 3"))
	is.Equal(out, "out\n")    // stdout
	is.Equal(errOut, "err\n") // stderr
	is.Equal(code, 3)         // exit code
}

func TestEnvOverridesTheDevelopersSettings(t *testing.T) {
	is := is.New(t)
	t.Setenv("LEDGER_TOKEN", "secret")
	t.Setenv("LEDGER_RANGE", "1-2")
	cmd := exec.Command("sh", "-c", `echo "$LEDGER_DATA|$LEDGER_RANGE|$LEDGER_TOKEN|$LEDGER_ADDR|$LEDGER_SERVICE"`)
	cmd.Env = Env("/data", "30000-30100")
	out, _, code := Run(t, cmd)
	is.Equal(code, 0)
	is.Equal(out, "/data|30000-30100|||\n") // the test's data and range, nothing of the developer's
}

func TestFreeAddrCanBeListenedOn(t *testing.T) {
	is := is.New(t)
	addr := FreeAddr(t)
	host, _, err := net.SplitHostPort(addr)
	is.NoErr(err)
	is.Equal(host, "127.0.0.1") // loopback only
	ln, err := net.Listen("tcp", addr)
	is.NoErr(err) // the port is free
	ln.Close()
}

func TestWaitForReturnsOnceTheConditionHolds(t *testing.T) {
	is := is.New(t)
	n := 0
	WaitFor(t, "three polls", func() bool { n++; return n == 3 })
	is.Equal(n, 3) // polled until the condition held, and no more
}

func TestBufferTakesConcurrentWrites(t *testing.T) {
	is := is.New(t)
	var b Buffer
	var wg sync.WaitGroup
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				_, _ = b.Write([]byte("x"))
				_ = b.String()
			}
		}()
	}
	wg.Wait()
	is.Equal(len(b.String()), 1000) // every write kept
}
