//go:build !linux

package commands

import "github.com/portledger/portledger/ledger"

// ephemeralSource names where the ephemeral range comes from, for messages.
const ephemeralSource = "the OS"

// ephemeralRange is unknown here: no range is refused.
func ephemeralRange() (ledger.Range, []ledger.Range, bool) { return ledger.Range{}, nil, false }
