package ledger

import (
	"strconv"
	"time"

	"github.com/oklog/ulid/v2"
)

// EventType names what happened. The names are part of the log and the API
// and never change.
type EventType string

// The event types. Each has exactly one payload struct below.
const (
	EventAllocated        EventType = "allocated"
	EventPIDRegistered    EventType = "pid_registered"
	EventHealthChanged    EventType = "health_changed"
	EventStatsReported    EventType = "stats_reported"
	EventReleased         EventType = "released"
	EventConflictDetected EventType = "conflict_detected"
	EventRangeChanged     EventType = "range_changed"
	// EventChainAccepted records that the daemon was started on a log
	// whose hash chain does not hold, because its operator said so
	// (`ledger serve --accept-broken-chain`).
	EventChainAccepted EventType = "chain_accepted"
)

// Action returns the JSONL "action" word of the original port manager for t.
func (t EventType) Action() string {
	switch t {
	case EventAllocated:
		return "allocate"
	case EventPIDRegistered:
		return "register_pid"
	case EventHealthChanged:
		return "health_change"
	case EventStatsReported:
		return "stats"
	case EventReleased:
		return "release"
	case EventConflictDetected:
		return "conflict"
	case EventRangeChanged:
		return "range"
	case EventChainAccepted:
		return "chain_accepted"
	}
	return string(t)
}

// Event is one entry of the log. ID is a ULID assigned inside the write
// transaction; At is the millisecond time of the ID, so time order and log
// order are the same thing. Exactly one payload pointer is set, the one that
// matches Type.
type Event struct {
	ID   ulid.ULID
	Type EventType
	At   time.Time
	Port int

	Allocated     *Allocated
	PIDRegistered *PIDRegistered
	HealthChanged *HealthChanged
	StatsReported *StatsReported
	Released      *Released
	Conflict      *ConflictDetected
	RangeChanged  *RangeChanged
	ChainAccepted *ChainAccepted

	// Imported is set on events made from the original port manager's files.
	Imported *ImportSource
	// Actor is who asked for the write; nil on events written before actors
	// were recorded, and on imported events.
	Actor *Actor
}

// Allocated is the payload of EventAllocated: a port handed to a service.
type Allocated struct {
	ServiceName string
	StartedBy   string
	Purpose     string
	PID         int   // 0 when no process was named
	PIDStarted  int64 // the process start time, Unix milliseconds (gopsutil's CreateTime)
	HealthURL   string
	Lease       time.Duration // how long the port is kept without a PID or a listener; 0 for the default
}

// PIDRegistered is the payload of EventPIDRegistered.
type PIDRegistered struct {
	PID        int
	PIDStarted int64 // Unix milliseconds, guards against PID reuse
	Cmdline    string
	// Reason says why the watchdog registered the PID (a wrapper exited
	// and its descendant listens on the port); "" when the caller did.
	Reason string
}

// HealthChanged is the payload of EventHealthChanged. Only transitions are
// recorded; the probe results are those of the check that caused it.
type HealthChanged struct {
	From      Health
	To        Health
	Reason    string
	Alive     bool
	Listening bool
	Endpoint  string // "" when no health URL is set, "ok" or what failed
}

// StatsReported is the payload of EventStatsReported: the service's own
// running totals.
type StatsReported struct {
	RequestCount int64
	ErrorCount   int64
}

// Released is the payload of EventReleased.
type Released struct {
	Reason       string
	ReleasedBy   string
	DurationMS   int64 // how long the allocation was held
	RequestCount int64
	ErrorCount   int64
}

// ConflictDetected is the payload of EventConflictDetected: a listener in the
// managed range that the ledger did not hand out.
type ConflictDetected struct {
	PID     int
	Command string
}

// RangeChanged is the payload of EventRangeChanged.
type RangeChanged struct {
	From Range
	To   Range
}

// ChainAccepted is the payload of EventChainAccepted: the breaks of the
// hash chain that the operator accepted, the first of them named.
type ChainAccepted struct {
	Breaks     int       // how many breaks were accepted
	EventID    ulid.ULID // the first break's event (zero: the end of the log)
	Seq        uint64    // the first break's position in the chain
	Problem    string    // what was wrong there
	AcceptedBy string    // who started the daemon with --accept-broken-chain
}

// ImportSource says where an imported event came from.
type ImportSource struct {
	File string
	Line int
}

// String returns "file:line", the form that JSON and the CLI show.
func (s ImportSource) String() string { return s.File + ":" + strconv.Itoa(s.Line) }

// ImportedFrom returns where e was imported from ("file:line"), or "" for
// an event this ledger lived.
func (e *Event) ImportedFrom() string {
	if e.Imported == nil {
		return ""
	}
	return e.Imported.String()
}

// Health is the state of an allocation as the watchdog sees it.
type Health string

// Health states.
const (
	HealthStarting  Health = "starting"
	HealthHealthy   Health = "healthy"
	HealthUnhealthy Health = "unhealthy"
	HealthDead      Health = "dead"
)

// Valid reports whether h is one of the known states.
func (h Health) Valid() bool {
	switch h {
	case HealthStarting, HealthHealthy, HealthUnhealthy, HealthDead:
		return true
	}
	return false
}

// IDTime returns the time encoded in a ULID, in UTC.
func IDTime(id ulid.ULID) time.Time {
	return time.UnixMilli(int64(id.Time())).UTC()
}
