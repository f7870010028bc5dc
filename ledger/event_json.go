package ledger

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"
)

// eventJSON is the flat JSON form of an event used by the API, --json and
// history: {"id", "type", "at", "port", ...payload}.
type eventJSON struct {
	ID   ulid.ULID `json:"id"`
	Type EventType `json:"type"`
	At   string    `json:"at"`
	Port int       `json:"port"`

	ServiceName  string  `json:"service_name,omitempty"`
	StartedBy    string  `json:"started_by,omitempty"`
	Purpose      string  `json:"purpose,omitempty"`
	PID          int     `json:"pid,omitempty"`
	PIDStartedAt *Millis `json:"pid_started_at,omitempty"`
	Cmdline      string  `json:"cmdline,omitempty"`
	HealthURL    string  `json:"health_url,omitempty"`
	LeaseS       float64 `json:"lease_s,omitempty"`

	From      string `json:"from,omitempty"`
	To        string `json:"to,omitempty"`
	Reason    string `json:"reason,omitempty"`
	Alive     *bool  `json:"alive,omitempty"`
	Listening *bool  `json:"listening,omitempty"`
	Endpoint  string `json:"endpoint,omitempty"`

	RequestCount *int64  `json:"request_count,omitempty"`
	ErrorCount   *int64  `json:"error_count,omitempty"`
	ReleasedBy   string  `json:"released_by,omitempty"`
	DurationS    float64 `json:"duration_s,omitempty"`

	Command string `json:"command,omitempty"`

	Breaks      int       `json:"breaks,omitempty"`
	BrokenEvent ulid.ULID `json:"broken_event,omitzero"`
	BrokenSeq   uint64    `json:"broken_seq,omitempty"`
	AcceptedBy  string    `json:"accepted_by,omitempty"`

	// ImportedFrom is "file:line"; an older form gave the line apart.
	ImportedFrom string `json:"imported_from,omitempty"`
	ImportedLine int    `json:"imported_line,omitempty"`

	Actor *Actor `json:"actor,omitempty"`
}

// MarshalJSON renders the flat form.
func (e Event) MarshalJSON() ([]byte, error) {
	j := eventJSON{ID: e.ID, Type: e.Type, At: FormatTime(e.At), Port: e.Port}
	switch {
	case e.Allocated != nil:
		p := e.Allocated
		j.ServiceName, j.StartedBy, j.Purpose, j.PID = p.ServiceName, p.StartedBy, p.Purpose, p.PID
		j.HealthURL, j.LeaseS = p.HealthURL, p.Lease.Seconds()
		if p.PIDStarted != 0 {
			m := Millis(p.PIDStarted)
			j.PIDStartedAt = &m
		}
	case e.PIDRegistered != nil:
		p := e.PIDRegistered
		j.PID, j.Cmdline, j.Reason = p.PID, p.Cmdline, p.Reason
		if p.PIDStarted != 0 {
			m := Millis(p.PIDStarted)
			j.PIDStartedAt = &m
		}
	case e.HealthChanged != nil:
		p := e.HealthChanged
		j.From, j.To, j.Reason, j.Endpoint = string(p.From), string(p.To), p.Reason, p.Endpoint
		j.Alive, j.Listening = &p.Alive, &p.Listening
	case e.StatsReported != nil:
		p := e.StatsReported
		j.RequestCount, j.ErrorCount = &p.RequestCount, &p.ErrorCount
	case e.Released != nil:
		p := e.Released
		j.Reason, j.ReleasedBy = p.Reason, p.ReleasedBy
		j.DurationS = float64(p.DurationMS) / 1000
		j.RequestCount, j.ErrorCount = &p.RequestCount, &p.ErrorCount
	case e.Conflict != nil:
		j.PID, j.Command = e.Conflict.PID, e.Conflict.Command
	case e.RangeChanged != nil:
		j.From, j.To = e.RangeChanged.From.String(), e.RangeChanged.To.String()
	case e.ChainAccepted != nil:
		p := e.ChainAccepted
		j.Breaks, j.BrokenEvent, j.BrokenSeq, j.Reason, j.AcceptedBy = p.Breaks, p.EventID, p.Seq, p.Problem, p.AcceptedBy
	}
	if e.Imported != nil {
		j.ImportedFrom = e.Imported.String()
	}
	j.Actor = e.Actor
	return json.Marshal(j)
}

// UnmarshalJSON reads the flat form back.
func (e *Event) UnmarshalJSON(b []byte) error {
	var j eventJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	at, err := time.Parse(time.RFC3339Nano, j.At)
	if err != nil {
		return fmt.Errorf("event %s: bad time %q", j.ID, j.At)
	}
	*e = Event{ID: j.ID, Type: j.Type, At: at.UTC(), Port: j.Port}
	var started int64
	if j.PIDStartedAt != nil {
		started = int64(*j.PIDStartedAt)
	}
	deref := func(p *int64) int64 {
		if p == nil {
			return 0
		}
		return *p
	}
	derefb := func(p *bool) bool { return p != nil && *p }
	switch j.Type {
	case EventAllocated:
		e.Allocated = &Allocated{ServiceName: j.ServiceName, StartedBy: j.StartedBy, Purpose: j.Purpose,
			PID: j.PID, PIDStarted: started, HealthURL: j.HealthURL,
			Lease: time.Duration(math.Round(j.LeaseS*1000)) * time.Millisecond}
	case EventPIDRegistered:
		e.PIDRegistered = &PIDRegistered{PID: j.PID, PIDStarted: started, Cmdline: j.Cmdline, Reason: j.Reason}
	case EventHealthChanged:
		e.HealthChanged = &HealthChanged{From: Health(j.From), To: Health(j.To), Reason: j.Reason,
			Alive: derefb(j.Alive), Listening: derefb(j.Listening), Endpoint: j.Endpoint}
	case EventStatsReported:
		e.StatsReported = &StatsReported{RequestCount: deref(j.RequestCount), ErrorCount: deref(j.ErrorCount)}
	case EventReleased:
		e.Released = &Released{Reason: j.Reason, ReleasedBy: j.ReleasedBy,
			DurationMS: int64(math.Round(j.DurationS * 1000)), RequestCount: deref(j.RequestCount), ErrorCount: deref(j.ErrorCount)}
	case EventConflictDetected:
		e.Conflict = &ConflictDetected{PID: j.PID, Command: j.Command}
	case EventRangeChanged:
		from, err1 := ParseRange(j.From)
		to, err2 := ParseRange(j.To)
		if err1 != nil || err2 != nil {
			return fmt.Errorf("event %s: bad range", j.ID)
		}
		e.RangeChanged = &RangeChanged{From: from, To: to}
	case EventChainAccepted:
		e.ChainAccepted = &ChainAccepted{Breaks: j.Breaks, EventID: j.BrokenEvent, Seq: j.BrokenSeq, Problem: j.Reason, AcceptedBy: j.AcceptedBy}
	default:
		return fmt.Errorf("event %s: unknown type %q", j.ID, j.Type)
	}
	if j.ImportedFrom != "" {
		e.Imported = parseImportSource(j.ImportedFrom, j.ImportedLine)
	}
	e.Actor = j.Actor
	return nil
}

// parseImportSource reads "file:line", or a file and a line given apart.
func parseImportSource(from string, line int) *ImportSource {
	if line == 0 {
		if i := strings.LastIndexByte(from, ':'); i >= 0 {
			if n, err := strconv.Atoi(from[i+1:]); err == nil && n > 0 {
				return &ImportSource{File: from[:i], Line: n}
			}
		}
	}
	return &ImportSource{File: from, Line: line}
}
