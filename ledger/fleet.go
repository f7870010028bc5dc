package ledger

import (
	"encoding/json"
	"time"

	"github.com/oklog/ulid/v2"
)

// The fleet's types: this host's publishing to the fleet's NATS JetStream
// (FleetStatus, in service.go's Status) and the answers of the fleet's
// readers, which the fleet package computes and the REST API serves.

// FleetPlacement is one allocation somewhere in the fleet.
type FleetPlacement struct {
	Host string `json:"host"`
	// Reachable is false when the host's heartbeat expired: the
	// allocation is its last known one.
	Reachable  bool       `json:"reachable"`
	Allocation Allocation `json:"allocation"`
}

// FleetHost is one host of the fleet, now or at a moment.
type FleetHost struct {
	Host string `json:"host"`
	// Reachable says the host's heartbeat is alive (now only).
	Reachable bool `json:"reachable"`
	// LastHeard is the host's last heartbeat, when it is still kept.
	LastHeard *time.Time `json:"last_heard,omitempty"`
	// LagEvents and LagSeconds are how far behind its publishing was at
	// its last heartbeat.
	LagEvents  uint64  `json:"lag_events"`
	LagSeconds float64 `json:"lag_s"`
	Range      string  `json:"range,omitempty"`
	// AsOf is, for a moment of the past, the host's last event at or
	// before it.
	AsOf        ulid.ULID    `json:"as_of,omitzero"`
	Allocations []Allocation `json:"allocations"`
}

// FleetView is the whole fleet, now or at a moment.
type FleetView struct {
	// At is the moment; zero for now.
	At    time.Time   `json:"at,omitzero"`
	Hosts []FleetHost `json:"hosts"`
}

// FleetHostRange is a host known to the stream and the span of its events there.
type FleetHostRange struct {
	Host   string    `json:"host"`
	First  ulid.ULID `json:"first,omitzero"`
	Last   ulid.ULID `json:"last,omitzero"`
	Events uint64    `json:"events"`
}

// FleetEvent is an event of one host.
type FleetEvent struct {
	Host  string `json:"host"`
	Event Event  `json:"event"`
}

// MarshalJSON flattens the event and adds the host.
func (h FleetEvent) MarshalJSON() ([]byte, error) {
	b, err := json.Marshal(h.Event)
	if err != nil || len(b) < 2 {
		return b, err
	}
	hb, _ := json.Marshal(h.Host)
	out := append([]byte(`{"host":`), hb...)
	if len(b) > 2 {
		out = append(out, ',')
	}
	return append(out, b[1:]...), nil
}

// FleetHistoryQuery selects events of the fleet. Port needs Host.
type FleetHistoryQuery struct {
	Host    string
	Port    int
	Service string
	Since   ulid.ULID // inclusive; zero: from the start
	Until   ulid.ULID // inclusive; zero: no end
	Limit   int       // 0: DefaultFleetHistoryLimit
}

// DefaultFleetHistoryLimit bounds a history answer.
const DefaultFleetHistoryLimit = 10000

// FleetUsage is how the services of one host used its ports over a window.
type FleetUsage struct {
	Host     string         `json:"host"`
	Services []ServiceUsage `json:"services"`
}

// UnmarshalJSON reads what MarshalJSON writes.
func (h *FleetEvent) UnmarshalJSON(b []byte) error {
	var host struct {
		Host string `json:"host"`
	}
	if err := json.Unmarshal(b, &host); err != nil {
		return err
	}
	h.Host = host.Host
	return json.Unmarshal(b, &h.Event)
}
