package main

import (
	"strings"
	"testing"

	"github.com/matryer/is"
	"github.com/portledger/portledger/internal/testbin"
)

// TestUsageErrorsExitTwo runs the real binary with bad arguments: each is a
// usage error (exit 2) that says what is wrong and writes nothing.
func TestUsageErrorsExitTwo(t *testing.T) {
	cases := []struct {
		name string
		args []string
		want string // the start of stderr
	}{
		{"unknown protocol", []string{"allocate", "--service", "x", "--proto", "tcp6x"}, `ledger: --proto "tcp6x": want tcp, udp or both`},
		{"unknown env format", []string{"env", "--format", "yaml"}, `ledger: --format "yaml": want shell, dotenv or json`},
		{"unknown shell", []string{"completion", "tcsh"}, `ledger: completion: unknown shell "tcsh": want bash, zsh or fish`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			is := is.New(t)
			data := t.TempDir()
			out, errOut, code := testbin.Run(t, whyCmd(t, data, c.args...))
			is.Equal(code, 2)                          // a usage error
			is.Equal(out, "")                          // nothing on stdout
			is.True(strings.HasPrefix(errOut, c.want)) // says what is wrong
			st, _, _ := testbin.Run(t, whyCmd(t, data, "status", "--json"))
			is.True(strings.Contains(st, `"allocated_ports": 0`)) // nothing allocated
		})
	}
}
