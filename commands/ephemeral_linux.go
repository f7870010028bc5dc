//go:build linux

package commands

import (
	"os"
	"strconv"
	"strings"

	"github.com/portledger/portledger/ledger"
)

// ephemeralSource names where the ephemeral range comes from, for messages.
const ephemeralSource = "/proc/sys/net/ipv4/ip_local_port_range"

// reservedSource lists the ports reserved out of the ephemeral range.
const reservedSource = "/proc/sys/net/ipv4/ip_local_reserved_ports"

// ephemeralRange reads the kernel's ephemeral range and reserved ports. The
// IPv4 setting applies to IPv6 too.
func ephemeralRange() (ledger.Range, []ledger.Range, bool) {
	b, err := os.ReadFile(ephemeralSource)
	if err != nil {
		return ledger.Range{}, nil, false
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return ledger.Range{}, nil, false
	}
	lo, err1 := strconv.Atoi(f[0])
	hi, err2 := strconv.Atoi(f[1])
	if err1 != nil || err2 != nil || lo > hi {
		return ledger.Range{}, nil, false
	}
	var reserved []ledger.Range
	if b, err := os.ReadFile(reservedSource); err == nil {
		reserved, _ = parsePortList(string(b)) // a list we cannot read reserves nothing
	}
	return ledger.Range{Lo: lo, Hi: hi}, reserved, true
}

// keepOut is the second way out of an overlap: reserve the range.
func keepOut(r, _ ledger.Range) string {
	return "reserve it: sudo sysctl -w net.ipv4.ip_local_reserved_ports=" + r.String() + " (and a line in /etc/sysctl.d/ to keep it)"
}
