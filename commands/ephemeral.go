package commands

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/portledger/portledger/ledger"
)

// EphemeralRange returns the range from which the kernel picks the local
// port of an outgoing connection on its own, and the ports reserved out of
// it; ok is false where the OS does not say (then nothing is refused).
func EphemeralRange() (eph ledger.Range, reserved []ledger.Range, ok bool) {
	return ephemeralRange()
}

// CheckEphemeral returns an EINVALID error when r overlaps the kernel's
// ephemeral range on ports not reserved from it (Linux's
// net.ipv4.ip_local_reserved_ports; macOS reserves none):
// the kernel may give such a port to any outgoing connection at any moment,
// so a port the ledger hands out could be taken before its service binds
// it. The error explains this and the two ways out.
func CheckEphemeral(r ledger.Range) error {
	eph, reserved, ok := EphemeralRange()
	if !ok {
		return nil
	}
	return checkEphemeral(r, eph, reserved)
}

// checkEphemeral is CheckEphemeral against a given ephemeral range and
// reserved ports.
func checkEphemeral(r, eph ledger.Range, reserved []ledger.Range) error {
	lo, hi := max(r.Lo, eph.Lo), min(r.Hi, eph.Hi)
	if lo > hi {
		return nil
	}
	var open []int
	for p := lo; p <= hi; p++ {
		if !inAny(reserved, p) {
			open = append(open, p)
		}
	}
	if len(open) == 0 {
		return nil
	}
	below := ""
	if size := r.Size(); eph.Lo-size > 1024 {
		below = fmt.Sprintf(", e.g. to %d-%d", eph.Lo-size, eph.Lo-1)
	}
	return ledger.Errorf(ledger.EINVALID, "range %s overlaps the kernel's ephemeral ports %s (%s): "+
		"the kernel gives %d of its ports (%s) to outgoing connections on its own, so a port the ledger hands out could be taken before its service binds it. "+
		"Either move the range out of %s%s, "+
		"or %s. "+
		"--allow-ephemeral (LEDGER_ALLOW_EPHEMERAL=1) uses it as it is",
		r, eph, ephemeralSource, len(open), ledger.FormatPorts(open), eph, below, keepOut(r, eph))
}

// portrangeAdvice says how to move macOS's ephemeral range
// (net.inet.ip.portrange.first and .last) off r, which overlaps eph: above
// r, else below it; a range that covers eph all can only move itself.
func portrangeAdvice(r, eph ledger.Range) string {
	const keep = " (and a line in /etc/sysctl.conf to keep it)"
	switch {
	case r.Hi < eph.Hi:
		return fmt.Sprintf("move the ephemeral ports above it: sudo sysctl -w net.inet.ip.portrange.first=%d", r.Hi+1) + keep
	case r.Lo > eph.Lo:
		return fmt.Sprintf("move the ephemeral ports below it: sudo sysctl -w net.inet.ip.portrange.last=%d", r.Lo-1) + keep
	}
	return fmt.Sprintf("shrink it: it covers all of %s", eph)
}

func inAny(rs []ledger.Range, p int) bool {
	for _, r := range rs {
		if r.Contains(p) {
			return true
		}
	}
	return false
}

// parsePortList reads a list such as "8000-8100,9000" (the format of
// ip_local_reserved_ports).
func parsePortList(s string) ([]ledger.Range, error) {
	var out []ledger.Range
	for _, part := range strings.Split(strings.TrimSpace(s), ",") {
		if part == "" {
			continue
		}
		lo, hi, isRange := strings.Cut(part, "-")
		if !isRange {
			hi = lo
		}
		l, err1 := strconv.Atoi(strings.TrimSpace(lo))
		h, err2 := strconv.Atoi(strings.TrimSpace(hi))
		if err1 != nil || err2 != nil || l > h {
			return nil, fmt.Errorf("port list %q: bad entry %q", s, part)
		}
		out = append(out, ledger.Range{Lo: l, Hi: h})
	}
	return out, nil
}
