package ledger

import (
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"
)

// A point in the log's history is written as an inclusive upper bound ULID:
// the registry "at T" is the fold of every event whose ID is <= UntilID(T).
// A point given as an event ULID is that event itself.

// UntilID returns the largest ULID of t's millisecond.
func UntilID(t time.Time) ulid.ULID {
	var id ulid.ULID
	_ = id.SetTime(uint64(max(t.UnixMilli(), 0)))
	for i := 6; i < 16; i++ {
		id[i] = 0xFF
	}
	return id
}

// SinceID returns the smallest ULID of t's millisecond.
func SinceID(t time.Time) ulid.ULID {
	var id ulid.ULID
	_ = id.SetTime(uint64(max(t.UnixMilli(), 0)))
	return id
}

// NextID returns the ULID just after id: an exclusive bound "after id"
// written as an inclusive one.
func NextID(id ulid.ULID) ulid.ULID {
	for i := 15; i >= 0; i-- {
		id[i]++
		if id[i] != 0 {
			break
		}
	}
	return id
}

// PrevID returns the ULID just before id: an exclusive bound "before id"
// written as an inclusive one.
func PrevID(id ulid.ULID) ulid.ULID {
	for i := 15; i >= 0; i-- {
		id[i]--
		if id[i] != 0xFF {
			break
		}
	}
	return id
}

// ParseTime reads a moment as users write it: RFC 3339, "YYYY-MM-DD",
// "YYYY-MM-DD HH:MM[:SS]" (local time), an event ULID, or a duration ago
// ("90m", "2h", "7d", "1d12h"). isID is true when s was a ULID, so callers can
// bound by that exact event. A time after now is refused with EINVALID.
func ParseTime(s string, now time.Time) (t time.Time, id ulid.ULID, isID bool, err error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, id, false, Errorf(EINVALID, "empty time")
	}
	if len(s) == ulid.EncodedSize {
		if u, perr := ulid.ParseStrict(s); perr == nil {
			// An event ID names its moment: one after now is refused as a
			// date after now is, so no answer speaks of the future.
			if at := IDTime(u); at.After(now) {
				return time.Time{}, id, false, Errorf(EINVALID, "event ID %s names %s, which is in the future", s, FormatTime(at))
			}
			return IDTime(u), u, true, nil
		}
	}
	if d, ok := parseAgo(s); ok {
		return now.Add(-d), id, false, nil
	}
	layouts := []struct {
		layout string
		local  bool
	}{
		{time.RFC3339Nano, false},
		{"2006-01-02T15:04:05", true},
		{"2006-01-02 15:04:05", true},
		{"2006-01-02 15:04", true},
		{"2006-01-02T15:04", true},
		{"2006-01-02", true},
	}
	for _, l := range layouts {
		var p time.Time
		var perr error
		if l.local {
			p, perr = time.ParseInLocation(l.layout, s, time.Local)
		} else {
			p, perr = time.Parse(l.layout, s)
		}
		if perr == nil {
			if p.After(now) {
				return time.Time{}, id, false, Errorf(EINVALID, "time %q is in the future", s)
			}
			return p, id, false, nil
		}
	}
	return time.Time{}, id, false, Errorf(EINVALID,
		"time %q: want RFC 3339, YYYY-MM-DD[ HH:MM[:SS]], an event ULID, or a duration ago like 90m, 2h, 7d", s)
}

// ParsePoint parses s as ParseTime does and returns the inclusive upper bound
// ULID of that moment. An empty s is the zero ULID: now.
func ParsePoint(s string, now time.Time) (ulid.ULID, error) {
	if strings.TrimSpace(s) == "" {
		return ulid.Zero, nil
	}
	t, id, isID, err := ParseTime(s, now)
	if err != nil {
		return ulid.Zero, err
	}
	if isID {
		return id, nil
	}
	return UntilID(t), nil
}

// ParseSince parses a lower bound: an event ULID bounds at that event, a time
// at the first ID of its millisecond. Empty is the zero ULID: unbounded.
func ParseSince(s string, now time.Time) (ulid.ULID, error) {
	if strings.TrimSpace(s) == "" {
		return ulid.Zero, nil
	}
	t, id, isID, err := ParseTime(s, now)
	if err != nil {
		return ulid.Zero, err
	}
	if isID {
		return id, nil
	}
	return SinceID(t), nil
}

// parseAgo reads "90m", "2h", "7d", "1d12h", "30s" as a duration before now.
func parseAgo(s string) (time.Duration, bool) {
	if s == "" || s[0] < '0' || s[0] > '9' {
		return 0, false
	}
	var total time.Duration
	rest := s
	for rest != "" {
		i := 0
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			i++
		}
		if i == 0 || i == len(rest) {
			return 0, false
		}
		n, err := strconv.Atoi(rest[:i])
		if err != nil {
			return 0, false
		}
		var unit time.Duration
		switch rest[i] {
		case 's':
			unit = time.Second
		case 'm':
			unit = time.Minute
		case 'h':
			unit = time.Hour
		case 'd':
			unit = 24 * time.Hour
		case 'w':
			unit = 7 * 24 * time.Hour
		default:
			return 0, false
		}
		// A duration past time.Duration's ~292 years would wrap around
		// into the future.
		if time.Duration(n) > math.MaxInt64/unit || total > math.MaxInt64-time.Duration(n)*unit {
			return 0, false
		}
		total += time.Duration(n) * unit
		rest = rest[i+1:]
	}
	return total, true
}
