package ledger

import (
	"context"
	"time"

	"github.com/oklog/ulid/v2"
)

// Service is what the CLI and the REST API do with a ledger. The commands
// package implements it on a local log file; httpapi.Client implements it by
// talking to a running daemon, so callers cannot tell the two apart.
type Service interface {
	// Allocate hands a port to a service. It returns EINVALID for bad
	// fields, ECONFLICT when the preferred port is held, EEXHAUSTED when
	// no port of the range is free.
	Allocate(ctx context.Context, req AllocateRequest) (Allocation, error)
	// RegisterPID records the process that holds a port. ENOTFOUND if the
	// port is not allocated, EINVALID if the PID is not a live process.
	RegisterPID(ctx context.Context, port, pid int) (Allocation, error)
	// ReportStats records the service's request and error totals.
	// ENOTFOUND if the port is not allocated, EINVALID for negative counts.
	ReportStats(ctx context.Context, port int, requests, errors int64) error
	// Release frees a port. ENOTFOUND if it is not allocated, ECONFLICT if
	// req.EventID is set and the port is now held by another allocation.
	Release(ctx context.Context, req ReleaseRequest) (Event, error)
	// SetRange changes the managed range. EINVALID for a bad range or one
	// that would leave live allocations outside it.
	SetRange(ctx context.Context, r Range) error

	// Status returns the registry at the given point (zero: now).
	Status(ctx context.Context, at ulid.ULID) (Status, error)
	// Allocations lists allocations at a point, optionally of one service.
	Allocations(ctx context.Context, q AllocationQuery) ([]Allocation, error)
	// Allocation returns the holder of one port at a point; ENOTFOUND if free.
	Allocation(ctx context.Context, port int, at ulid.ULID) (Allocation, error)
	// History returns the events that match q, oldest first.
	History(ctx context.Context, q HistoryQuery) ([]Event, error)
	// Who says who held a port at a point (zero: now), and, when it was
	// free, who held it last before and next after. EINVALID for a bad
	// port.
	Who(ctx context.Context, port int, at ulid.ULID) (WhoAnswer, error)
	// Usage reports how each service used its ports over a window, by
	// service name. EINVALID when Since is after Until.
	Usage(ctx context.Context, q UsageQuery) ([]ServiceUsage, error)
	// Import writes events made from the original port manager's files
	// into the past of the log, skipping those it already has. EINVALID,
	// writing nothing, for an event without an ID or a source, or in the
	// future.
	Import(ctx context.Context, evs []Event) (ImportResult, error)
}

// AllocateRequest asks for a port.
type AllocateRequest struct {
	ServiceName string `json:"service_name"`
	StartedBy   string `json:"started_by"`
	Purpose     string `json:"purpose"`
	PID         int    `json:"pid,omitempty"`
	Port        int    `json:"port,omitempty"` // preferred port; 0 lets the ledger choose
	HealthURL   string `json:"health_url,omitempty"`
	// HealthPath, instead of HealthURL, asks for the health URL
	// http://127.0.0.1:PORT/PATH once the port is chosen, for callers that
	// cannot know the port before asking (`ledger run --health /health`).
	// It starts with "/".
	HealthPath string `json:"health_path,omitempty"`
	// Lease is how long, in seconds, the port is kept without a PID or a
	// listener before the watchdog frees it; 0 for the default.
	Lease float64 `json:"lease_s,omitempty"`
	// Proto says on which protocols the port must be free: "tcp" (the
	// default when empty), "udp" or "both".
	Proto Proto `json:"proto,omitempty"`
	// Within, "LO-HI", narrows the choice to a part of the managed range
	// (the portserver listener hands out ports from its own part). Empty
	// for the whole range.
	Within string `json:"within,omitempty"`
}

// Proto names the protocols on which an allocated port must be free.
type Proto string

// Protocols of an allocation.
const (
	ProtoTCP  Proto = "tcp"
	ProtoUDP  Proto = "udp"
	ProtoBoth Proto = "both"
)

// TCP reports whether the port must be free on TCP (the default).
func (p Proto) TCP() bool { return p != ProtoUDP }

// UDP reports whether the port must be free on UDP.
func (p Proto) UDP() bool { return p == ProtoUDP || p == ProtoBoth }

// Valid reports whether p is empty or one of the known protocols.
func (p Proto) Valid() bool {
	switch p {
	case "", ProtoTCP, ProtoUDP, ProtoBoth:
		return true
	}
	return false
}

// ReleaseRequest asks to free a port.
type ReleaseRequest struct {
	Port       int       `json:"port"`
	Reason     string    `json:"reason,omitempty"`
	ReleasedBy string    `json:"released_by,omitempty"`
	EventID    ulid.ULID `json:"event_id,omitzero"` // when set, release only this allocation
}

// HealthReport is a watchdog finding about one allocation.
type HealthReport struct {
	Port      int       `json:"port"`
	EventID   ulid.ULID `json:"event_id"` // the allocation that was probed
	To        Health    `json:"to"`
	Reason    string    `json:"reason"`
	Alive     bool      `json:"alive"`
	Listening bool      `json:"listening"`
	Endpoint  string    `json:"endpoint,omitempty"`
}

// AllocationQuery filters Allocations.
type AllocationQuery struct {
	At      ulid.ULID // zero: now
	Service string    // "": every service
}

// HistoryQuery filters History. Since and Until are inclusive ULID bounds
// (see SinceID and UntilID); zero means unbounded.
type HistoryQuery struct {
	Port    int
	Service string
	Since   ulid.ULID
	Until   ulid.ULID
	Limit   int // 0: no limit
	// Newest asks for the newest events first; with Limit, the newest
	// Limit of them. A port's newest page is read backwards through the
	// port index, without walking the port's older history.
	Newest bool
	// Type keeps only the events of this type ("": every type).
	Type EventType
}

// Status is the answer of GET /api/ports/status, in the original port
// manager's shape.
type Status struct {
	PortManager PortManagerStatus `json:"port_manager"`
	Watchdog    WatchdogStatus    `json:"watchdog"`
	// Fleet is this host's publishing to the fleet, when the daemon runs
	// with --fleet.
	Fleet *FleetStatus `json:"fleet,omitempty"`
	// Files says how far the daemon's projection files stand, while a
	// catch-up writes them (after a start without them, say); the log
	// answers every request meanwhile.
	Files *FilesStatus `json:"files,omitempty"`
}

// FilesStatus says how far the projection files (port_registry.json and
// the daily JSONL logs) stand behind the log while they catch up.
type FilesStatus struct {
	CatchingUp bool      `json:"catching_up"`
	UpTo       ulid.ULID `json:"up_to,omitzero"` // the last event the files hold
	Written    uint64    `json:"written"`        // events the running catch-up has written so far
}

// FleetStatus says how far this host's publishing to the fleet's NATS
// JetStream has come.
type FleetStatus struct {
	Host      string `json:"host"`
	URL       string `json:"url"`
	Connected bool   `json:"connected"`
	// Published is the ID of the last event the stream acknowledged.
	Published ulid.ULID `json:"published,omitzero"`
	// LagEvents is how many committed events are not acknowledged yet;
	// LagSeconds how old the oldest of them is.
	LagEvents  uint64  `json:"lag_events"`
	LagSeconds float64 `json:"lag_s"`
	// LastError is the last failure to connect or publish, while it lasts.
	LastError string `json:"last_error,omitempty"`
}

// PortManagerStatus is the registry part of Status.
type PortManagerStatus struct {
	PortRange      string       `json:"port_range"`
	TotalPorts     int          `json:"total_ports"`
	AllocatedPorts int          `json:"allocated_ports"`
	AvailablePorts int          `json:"available_ports"`
	Allocations    []Allocation `json:"allocations"`
	// AsOf is the ID of the last event folded into this state (zero for an
	// empty ledger).
	AsOf ulid.ULID `json:"as_of,omitzero"`
	// Skipped lists the ports of the range that browsers refuse to
	// connect to (the Fetch standard's bad ports), which allocation does
	// not choose on its own; they are not counted as available.
	Skipped []int `json:"skipped_ports,omitempty"`
	// Conflicts lists foreign listeners seen in the range.
	Conflicts []Conflict `json:"conflicts,omitempty"`
	// Chain is the hash chain's head (see Log.ChainHead); set for the
	// present only.
	Chain *ChainHead `json:"chain,omitempty"`
}

// Conflict is a foreign listener recorded in the managed range.
type Conflict struct {
	Port       int       `json:"port"`
	PID        int       `json:"pid"`
	Command    string    `json:"command"`
	DetectedAt time.Time `json:"detected_at"`
}

// WatchdogStatus is the watchdog part of Status.
type WatchdogStatus struct {
	Running         bool       `json:"running"`
	CheckInterval   float64    `json:"check_interval"` // seconds
	ChecksPerformed int64      `json:"checks_performed"`
	IssuesDetected  int64      `json:"issues_detected"`
	MonitoredPorts  int        `json:"monitored_ports"`
	LastSweepAt     *time.Time `json:"last_sweep_at,omitempty"`
	LastSweepMS     float64    `json:"last_sweep_ms,omitempty"`
}

// SweepResult is what one watchdog sweep found: the answer of
// POST /api/ports/health-check and `ledger check`.
type SweepResult struct {
	At         time.Time   `json:"at"`
	DurationMS float64     `json:"duration_ms"`
	Ports      []PortCheck `json:"ports"`
	Conflicts  []Conflict  `json:"conflicts"` // foreign listeners newly recorded by this sweep
}

// PortCheck is the probe of one allocation in a sweep.
type PortCheck struct {
	Port        int    `json:"port"`
	ServiceName string `json:"service_name"`
	PID         int    `json:"pid"`
	Alive       bool   `json:"alive"`
	Listening   bool   `json:"listening"`
	Endpoint    string `json:"endpoint,omitempty"` // "" when no health URL, "ok", or what failed
	Health      Health `json:"health"`             // the state after this sweep
	Action      string `json:"action,omitempty"`   // "released" when the sweep freed the port
	Reason      string `json:"reason,omitempty"`
}
