package ledger

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"
)

// Range is the managed port range, both ends included.
type Range struct {
	Lo, Hi int
}

// DefaultRange is the range of a new ledger.
var DefaultRange = Range{Lo: 8000, Hi: 8100}

// String returns the range as "8000-8100".
func (r Range) String() string { return fmt.Sprintf("%d-%d", r.Lo, r.Hi) }

// Size returns the number of ports in the range.
func (r Range) Size() int { return r.Hi - r.Lo + 1 }

// Contains reports whether port lies in the range.
func (r Range) Contains(port int) bool { return port >= r.Lo && port <= r.Hi }

// ParseRange parses "LO-HI". Both ends must be valid TCP ports (1-65535) and
// LO <= HI. It returns an EINVALID error otherwise.
func ParseRange(s string) (Range, error) {
	lo, hi, ok := strings.Cut(strings.TrimSpace(s), "-")
	if !ok {
		return Range{}, Errorf(EINVALID, "range %q: want LO-HI, e.g. 8000-8100", s)
	}
	l, err1 := strconv.Atoi(strings.TrimSpace(lo))
	h, err2 := strconv.Atoi(strings.TrimSpace(hi))
	if err1 != nil || err2 != nil {
		return Range{}, Errorf(EINVALID, "range %q: want LO-HI, e.g. 8000-8100", s)
	}
	r := Range{Lo: l, Hi: h}
	if err := r.Validate(); err != nil {
		return Range{}, err
	}
	return r, nil
}

// Validate returns an EINVALID error unless both ends are ports and Lo <= Hi.
func (r Range) Validate() error {
	if r.Lo < 1 || r.Hi > MaxPort || r.Lo > r.Hi {
		return Errorf(EINVALID, "range %d-%d: ends must be ports 1-65535 with LO <= HI", r.Lo, r.Hi)
	}
	return nil
}

// Allocation is a port held by a service: the live state that the registry
// folds out of the log. Its JSON shape is the original port manager's, plus
// event_id, pid_started_at and health_url.
type Allocation struct {
	Port         int       `json:"port"`
	ServiceName  string    `json:"service_name"`
	StartedBy    string    `json:"started_by"`
	Purpose      string    `json:"purpose"`
	PID          int       `json:"pid"`
	AllocatedAt  time.Time `json:"allocated_at"`
	HealthStatus Health    `json:"health_status"`
	RequestCount int64     `json:"request_count"`
	ErrorCount   int64     `json:"error_count"`
	EventID      ulid.ULID `json:"event_id"`
	PIDStartedAt *Millis   `json:"pid_started_at,omitempty"`
	HealthURL    string    `json:"health_url,omitempty"`
	Lease        Duration  `json:"lease_s,omitempty"`
	Cmdline      string    `json:"cmdline,omitempty"`
	// ImportedFrom is set when the allocation was imported from the
	// original port manager's files: where it came from ("file:line").
	// Such a hold was recorded by the old tool, not lived by this ledger.
	ImportedFrom string `json:"imported_from,omitempty"`
}

// Millis is a Unix millisecond time that renders as RFC 3339 in JSON.
type Millis int64

// Time returns m as a time.Time in UTC.
func (m Millis) Time() time.Time { return time.UnixMilli(int64(m)).UTC() }

// MarshalJSON renders m as an RFC 3339 string with milliseconds.
func (m Millis) MarshalJSON() ([]byte, error) {
	return []byte(`"` + FormatTime(m.Time()) + `"`), nil
}

// UnmarshalJSON parses an RFC 3339 string.
func (m *Millis) UnmarshalJSON(b []byte) error {
	s, err := strconv.Unquote(string(b))
	if err != nil {
		return err
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return err
	}
	*m = Millis(t.UnixMilli())
	return nil
}

// Duration is a duration that renders as seconds in JSON.
type Duration time.Duration

// MarshalJSON renders d as a number of seconds.
func (d Duration) MarshalJSON() ([]byte, error) {
	return strconv.AppendFloat(nil, time.Duration(d).Seconds(), 'f', -1, 64), nil
}

// UnmarshalJSON parses a number of seconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		return err
	}
	// Rounded, not truncated: 1234.567 s is 1234566999999.99 ns in float64.
	*d = Duration(math.Round(f * float64(time.Second)))
	return nil
}

// FormatTime renders t as the ledger does everywhere: RFC 3339 in UTC with
// milliseconds, e.g. 2025-11-15T14:30:00.000Z.
func FormatTime(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000Z07:00")
}
