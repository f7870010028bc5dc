package ledger

import (
	"time"

	"github.com/oklog/ulid/v2"
)

// The audit types: answers about the past (who held a port at a moment, how
// each service used its ports over a window) and the import of the original
// port manager's files.

// WhoAnswer says who held a port at a moment. A moment T includes every
// event at or before T: a port allocated at T is held "at T", a port
// released at T is free "at T".
type WhoAnswer struct {
	Port int `json:"port"`
	// At is the moment asked about: the time of the point, or now.
	At time.Time `json:"at"`
	// AsOf is the last event of the whole log at or before the moment;
	// absent when the moment is before the first event.
	AsOf ulid.ULID `json:"as_of,omitzero"`
	// Holder is the allocation that held the port at the moment, as it
	// stood then (pid, health, counts), with its release if it came later;
	// nil when the port was free.
	Holder *Tenure `json:"holder,omitempty"`
	// Previous is, when the port was free, the last allocation before the
	// moment, as it stood when it was released.
	Previous *Tenure `json:"previous,omitempty"`
	// Next is, when the port was free, the first allocation after the
	// moment, with its release if there is one.
	Next *Tenure `json:"next,omitempty"`
}

// Tenure is one allocation of a port, from its allocated event to its
// release.
type Tenure struct {
	Allocation Allocation `json:"allocation"`
	// Release is nil while the allocation still holds the port.
	Release *Release `json:"release,omitempty"`
}

// Release is how an allocation ended.
type Release struct {
	EventID    ulid.ULID `json:"event_id"`
	At         time.Time `json:"at"`
	Reason     string    `json:"reason"`
	ReleasedBy string    `json:"released_by,omitempty"`
	Duration   Duration  `json:"duration_s"`
	// ImportedFrom is set when the release was imported ("file:line").
	ImportedFrom string `json:"imported_from,omitempty"`
}

// UsageQuery selects the window of Usage. Since and Until are inclusive
// bounds as in HistoryQuery; zero Since is the start of the log, zero Until
// is now.
type UsageQuery struct {
	Since   ulid.ULID
	Until   ulid.ULID
	Service string // "": every service
}

// ServiceUsage is how one service used its ports over a window. Holds are
// clipped to the window: an allocation made before the window counts from
// the window's start, one still held at its end counts up to the end.
type ServiceUsage struct {
	Service string `json:"service"`
	// Allocations is the number of allocated events in the window.
	Allocations int `json:"allocations"`
	// Holds is the number of allocations that held a port at some time in
	// the window, those made before it included.
	Holds int `json:"holds"`
	// TotalHold is the sum of the holds' time within the window.
	TotalHold Duration `json:"total_hold_s"`
	// LongestHold is the longest hold within the window, and LongestPort
	// the port it was on.
	LongestHold Duration `json:"longest_hold_s"`
	LongestPort int      `json:"longest_port,omitempty"`
	// HeldAtEnd is the number of ports the service still held at the end
	// of the window.
	HeldAtEnd int `json:"held_at_end"`
	// Releases counts the releases in the window by reason ("" when none
	// was given).
	Releases map[string]int `json:"releases"`
	// ImportedHolds is how many of Holds were imported from the original
	// port manager's files rather than lived by this ledger.
	ImportedHolds int `json:"imported_holds,omitempty"`
}

// ImportResult says what an import did.
type ImportResult struct {
	// Imported is the number of events written.
	Imported int `json:"imported"`
	// Duplicates is the number of events that the ledger already had,
	// from an earlier import of the same files.
	Duplicates int `json:"duplicates"`
	// Skipped lists events that were not written, with the reason. An
	// import that would change the present is refused as a whole (see
	// commands.Import), so the ledger's own import leaves it empty.
	Skipped []ImportProblem `json:"skipped,omitempty"`
}

// ImportProblem is a line of the original files that was not imported.
type ImportProblem struct {
	File   string `json:"file"`
	Line   int    `json:"line"`
	Reason string `json:"reason"`
}
