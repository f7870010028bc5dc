package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/matryer/is"
	"github.com/portledger/portledger/internal/testbin"
)

// A read given a data directory that does not exist (a mistyped --data)
// says so and leaves nothing behind; a write still creates the ledger.
func TestReadsNeverCreateALedger(t *testing.T) {
	t.Parallel() // its own directories; it binds no port
	for _, args := range [][]string{
		{"status"}, {"history", "--port", "8000"}, {"who", "8000"}, {"usage", "--since", "1d"},
		{"env"}, {"events"}, {"verify"},
	} {
		t.Run(args[0], func(t *testing.T) {
			is := is.New(t)
			missing := filepath.Join(t.TempDir(), "typo")
			// runEnv, not run: run first sets the test's range, a write.
			_, errOut, code := runEnv(t, testbin.Env(missing, e2eRange), args...)
			is.Equal(code, 1)                                                 // an error
			is.True(strings.Contains(errOut, "no ledger in "+missing))        // naming the directory
			is.True(strings.Contains(errOut, "the directory does not exist")) // and what is wrong
			_, err := os.Stat(missing)
			is.True(os.IsNotExist(err)) // nothing was created
		})
	}
	is := is.New(t)
	fresh := filepath.Join(t.TempDir(), "new")
	_, errOut, code := run(t, fresh, "allocate", "--service", "first")
	is.Equal(code, 0) // a write creates the ledger
	is.Equal(errOut, "")
	_, _, code = run(t, fresh, "status")
	is.Equal(code, 0) // which a read then reads
}
