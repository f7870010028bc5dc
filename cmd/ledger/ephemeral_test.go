package main

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/matryer/is"
	"github.com/portledger/portledger/internal/testbin"
)

// strictCmd is the real binary without the tests' LEDGER_ALLOW_EPHEMERAL
// and LEDGER_RANGE, as a user's shell would run it.
func strictCmd(t *testing.T, data string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(bins.Ledger(t), args...)
	cmd.Env = append(testbin.Env(data, ""), "LEDGER_ALLOW_EPHEMERAL=", "LEDGER_RANGE=")
	return cmd
}

// TestRangeInTheEphemeralPortsIsRefused uses a range inside what this
// machine's kernel reports as its ephemeral ports.
func TestRangeInTheEphemeralPortsIsRefused(t *testing.T) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		t.Skipf("no ephemeral range to read here: %v", err)
	}
	if r, _ := os.ReadFile("/proc/sys/net/ipv4/ip_local_reserved_ports"); strings.TrimSpace(string(r)) != "" {
		t.Skipf("this machine reserves ports (%s): the test needs none reserved", r)
	}
	lo, _ := strconv.Atoi(strings.Fields(string(b))[0])
	rng := fmt.Sprintf("%d-%d", lo+1000, lo+1010)
	data := t.TempDir()
	for _, c := range []struct {
		name string
		args []string
		env  string // added to the environment
	}{
		{"range set", []string{"range", "set", rng}, ""},
		{"serve --range", []string{"serve", "--addr", "", "--range", rng}, ""},
		{"serve with LEDGER_RANGE", []string{"serve", "--addr", ""}, "LEDGER_RANGE=" + rng},
	} {
		t.Run(c.name, func(t *testing.T) {
			is := is.New(t)
			cmd := strictCmd(t, data, c.args...)
			if c.env != "" {
				cmd.Env = append(cmd.Env, c.env) // the last one wins
			}
			out, errOut, code := testbin.Run(t, cmd)
			is.Equal(code, 2)                                                          // refused as a usage error
			is.Equal(out, "")                                                          // nothing printed
			is.True(strings.Contains(errOut, "overlaps the kernel's ephemeral ports")) // says why
			is.True(strings.Contains(errOut, "ip_local_reserved_ports="+rng))          // and the ways out
			is.True(strings.Contains(errOut, "move the range"))
		})
	}
	is := is.New(t)
	st, _, code := testbin.Run(t, strictCmd(t, data, "range", "--json"))
	is.Equal(code, 0)
	is.True(strings.Contains(st, `"port_range": "8000-8100"`)) // the ledger's range is unchanged
	_, errOut, code := testbin.Run(t, strictCmd(t, data, "range", "set", rng, "--allow-ephemeral"))
	is.Equal(code, 0) // --allow-ephemeral lets it through
	is.Equal(errOut, "")
	out, errOut, code := testbin.Run(t, strictCmd(t, data, "allocate", "--service", "api"))
	is.Equal(code, 0) // allocate
	is.Equal(errOut, "")
	p, _ := strconv.Atoi(strings.TrimSpace(out))
	is.Equal(p, lo+1000) // and the port comes from it
}

func TestStatusShowsTheSkippedBrowserPorts(t *testing.T) {
	is := is.New(t)
	data := t.TempDir()
	_, errOut, code := testbin.Run(t, bins.Command(t, data, "6660-6670", "allocate", "--service", "a", "--port", "6660"))
	is.Equal(code, 0) // allocate
	is.Equal(errOut, "")
	out, errOut, code := testbin.Run(t, bins.Command(t, data, "6660-6670", "status"))
	is.Equal(code, 0) // status
	is.Equal(errOut, "")
	is.True(strings.Contains(out, "Skipped: 6665-6669 (browsers refuse these ports")) // the skip is shown
	is.True(strings.Contains(out, "11 ports, 1 allocated, 5 available"))              // and not counted available
}
