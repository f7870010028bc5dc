package commands_test

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/matryer/is"
	"github.com/portledger/portledger/commands"
	"github.com/portledger/portledger/ledger"
)

// kernelEphemeral reads the machine's ephemeral range the way an operator
// would, or skips the test where the OS does not show it.
func kernelEphemeral(t *testing.T) ledger.Range {
	t.Helper()
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		t.Skipf("no ephemeral range to read here: %v", err)
	}
	f := strings.Fields(string(b))
	lo, _ := strconv.Atoi(f[0])
	hi, _ := strconv.Atoi(f[1])
	return ledger.Range{Lo: lo, Hi: hi}
}

func TestCheckEphemeralReadsTheKernel(t *testing.T) {
	eph := kernelEphemeral(t)
	_, reserved, ok := commands.EphemeralRange()
	if !ok {
		t.Fatal("EphemeralRange does not read what the test reads")
	}
	if len(reserved) > 0 {
		t.Skipf("this machine reserves ports from its ephemeral range (%v): the overlap test needs none", reserved)
	}
	cases := []struct {
		name    string
		r       ledger.Range
		refused bool
	}{
		{"overlaps the bottom", ledger.Range{Lo: eph.Lo - 10, Hi: eph.Lo + 10}, true},
		{"inside", ledger.Range{Lo: eph.Lo + 100, Hi: eph.Lo + 200}, true},
		{"overlaps the top", ledger.Range{Lo: eph.Hi, Hi: min(eph.Hi+10, 65535)}, true},
		{"just below", ledger.Range{Lo: eph.Lo - 101, Hi: eph.Lo - 1}, false},
		{"the default range", ledger.DefaultRange, eph.Contains(8000) || eph.Contains(8100)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			is := is.New(t)
			err := commands.CheckEphemeral(c.r)
			if !c.refused {
				is.NoErr(err) // no overlap, no refusal
				return
			}
			is.Equal(ledger.ErrorCode(err), ledger.EINVALID) // refused
			msg := ledger.ErrorMessage(err)
			is.True(strings.Contains(msg, eph.String()))                                     // names the kernel's range
			is.True(strings.Contains(msg, "/proc/sys/net/ipv4/ip_local_port_range"))         // and where it comes from
			is.True(strings.Contains(msg, "move the range"))                                 // way out one
			is.True(strings.Contains(msg, "net.ipv4.ip_local_reserved_ports="+c.r.String())) // way out two
			is.True(strings.Contains(msg, "--allow-ephemeral"))                              // and the override
		})
	}
}

func TestBrowserBadPortsAreSkipped(t *testing.T) {
	is := is.New(t)
	ctx := context.Background()
	// 6665-6669 are IRC ports that browsers refuse.
	l := openRange(t, ledger.Range{Lo: 6664, Hi: 6670})
	var got []int
	for _, s := range []string{"a", "b"} {
		a, err := l.Allocate(ctx, ledger.AllocateRequest{ServiceName: s})
		is.NoErr(err) // allocate
		got = append(got, a.Port)
	}
	is.Equal(got, []int{6664, 6670}) // the bad ports in between are skipped
	_, err := l.Allocate(ctx, ledger.AllocateRequest{ServiceName: "c"})
	is.Equal(ledger.ErrorCode(err), ledger.EEXHAUSTED)                                                       // then the range is full
	is.True(strings.Contains(ledger.ErrorMessage(err), "5 skipped because browsers refuse them (6665-6669")) // and says why
	a, err := l.Allocate(ctx, ledger.AllocateRequest{ServiceName: "irc", Port: 6667})
	is.NoErr(err) // a bad port asked for by number is handed out
	is.Equal(a.Port, 6667)
	st, err := l.Status(ctx, [16]byte{})
	is.NoErr(err)
	is.Equal(st.PortManager.Skipped, []int{6665, 6666, 6667, 6668, 6669}) // status lists the skipped ports
	is.Equal(st.PortManager.AvailablePorts, 0)                            // none of them counts as available
}
