package commands

import (
	"github.com/portledger/portledger/ledger"
	"golang.org/x/sys/unix"
)

// ephemeralSource names where the ephemeral range comes from, for messages.
const ephemeralSource = "sysctl net.inet.ip.portrange.first and .last"

// ephemeralRange reads the range from which macOS picks the local port of
// an outgoing connection. macOS reserves no ports out of it.
func ephemeralRange() (ledger.Range, []ledger.Range, bool) {
	first, err1 := unix.SysctlUint32("net.inet.ip.portrange.first")
	last, err2 := unix.SysctlUint32("net.inet.ip.portrange.last")
	if err1 != nil || err2 != nil || first == 0 || first > last || last > 65535 {
		return ledger.Range{}, nil, false
	}
	return ledger.Range{Lo: int(first), Hi: int(last)}, nil, true
}

// keepOut is the second way out of an overlap: macOS cannot reserve
// ports, so the ephemeral range moves off r instead (portrangeAdvice).
func keepOut(r, eph ledger.Range) string { return portrangeAdvice(r, eph) }
