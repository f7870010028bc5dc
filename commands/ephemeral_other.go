//go:build !linux && !darwin

package commands

import "github.com/portledger/portledger/ledger"

// ephemeralSource names where the ephemeral range comes from, for messages.
const ephemeralSource = "the OS"

// ephemeralRange is unknown here (Windows keeps it in netsh, not read): no
// range is refused.
func ephemeralRange() (ledger.Range, []ledger.Range, bool) { return ledger.Range{}, nil, false }

// keepOut is the second way out of an overlap, never given here.
func keepOut(ledger.Range, ledger.Range) string {
	return "move the system's ephemeral ports off it"
}
