package main

import (
	"errors"
	"os/exec"
	"strings"
	"testing"

	"github.com/matryer/is"
)

// A host name that NATS would read as separators or wildcards is refused at
// start, before the daemon opens anything.
func TestServeRefusesBadHostNames(t *testing.T) {
	for _, tc := range []struct{ name, host string }{
		{"dot", "ci-7.example.com"},
		{"star", "ci*"},
		{"greater-than", "ci>"},
		{"space", "ci 7"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			_, errOut, code := run(t, t.TempDir(), "serve", "--addr", "", "--fleet", "nats://127.0.0.1:1", "--host", tc.host)
			is.Equal(code, 2)                                              // a usage error
			is.True(strings.Contains(errOut, "ledger: --host: host name")) // names the flag
			is.True(strings.Contains(errOut, "separators or wildcards"))   // and why
		})
	}
	t.Run("host without fleet", func(t *testing.T) {
		is := is.New(t)
		_, errOut, code := run(t, t.TempDir(), "serve", "--addr", "", "--host", "ci-7")
		is.Equal(code, 2)                                     // a usage error
		is.True(strings.Contains(errOut, "give --fleet too")) // says what is missing
	})
}

// `ledger hub` without the ledger-hub program says how to install it, and
// fleet reads without a fleet say what to give.
func TestHubAndFleetWithoutTheirParts(t *testing.T) {
	is := is.New(t)
	cmd := ledgerCmd(t, t.TempDir(), "hub", "--data", t.TempDir())
	// PATH without a ledger-hub; the test's ledger binary has none next to it.
	cmd.Env = append(cmd.Env, "PATH=/nonexistent")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	is.True(errors.As(err, &ee))                                          // fails
	is.Equal(ee.ExitCode(), 1)                                            // an error, not a usage mistake
	is.True(strings.Contains(string(out), "go install ./cmd/ledger-hub")) // with the way out
	_, errOut, code := run(t, t.TempDir(), "fleet", "status")
	is.Equal(code, 2)                                 // a usage error
	is.True(strings.Contains(errOut, "LEDGER_FLEET")) // names the setting
	_, errOut, code = run(t, t.TempDir(), "fleet", "who", "a.b:80", "--fleet", "nats://127.0.0.1:1")
	is.Equal(code, 2) // refused before connecting
	is.True(strings.Contains(errOut, "separators or wildcards"))
	_, errOut, code = run(t, t.TempDir(), "fleet", "status", "--fleet", "nats://127.0.0.1:1")
	is.Equal(code, 1)                                           // nobody answers
	is.True(strings.Contains(errOut, "no NATS server answers")) // said so
}
