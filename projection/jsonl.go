package projection

import (
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/oklog/ulid/v2"
	"github.com/portledger/portledger/ledger"
)

// The daily JSONL logs.
//
// Every event becomes one line of logs/port_manager/allocations_YYYYMMDD.jsonl,
// the file of the UTC date of the event. The lines keep the original port
// manager's look: they are written as Python's json.dumps writes them, with
// the separators ", " and ": ", every character outside printable ASCII
// escaped as \uXXXX, and the seed's fields first:
//
//	{"timestamp": "2025-11-15T14:30:00.000Z", "action": "allocate", "port": 8000, "service_name": "grace_backend", ...}
//
// The fields, in this order: timestamp, action, port, service_name,
// started_by, purpose (from the event for allocations, else from the
// allocation that held the port before the event, and absent when nobody
// did), event_id, then the event's payload, then the import source and the
// actor ({"via", "uid", "pid", "token"}, what is known of who wrote it). Strings that the event leaves
// empty are left out; the counts of stats and releases, the probe results
// of health changes and duration_s of releases are always there. The same
// event and the same holder always give the same bytes.

// dayFilePrefix and dayFileSuffix frame the UTC date in a day file's name.
const (
	dayFilePrefix = "allocations_"
	dayFileSuffix = ".jsonl"
	dayLayout     = "20060102"
)

// dayFileName returns the name of the JSONL file that holds events of t's
// UTC date, e.g. allocations_20251115.jsonl.
func dayFileName(t time.Time) string {
	return dayFilePrefix + t.UTC().Format(dayLayout) + dayFileSuffix
}

// appendTimestamp appends t as ledger.FormatTime writes it, quoted: the
// UTC time to the millisecond, 2025-11-15T14:30:00.000Z. It writes the
// digits itself, without time.Format's parsing of a layout and its string,
// which were a sixth of a replay's time.
func appendTimestamp(b []byte, t time.Time) []byte {
	t = t.UTC()
	year, month, day := t.Date()
	if year < 0 || year > 9999 {
		return appendPyString(b, ledger.FormatTime(t))
	}
	hour, minute, sec := t.Clock()
	b = append(b, '"')
	b = appendDigits(b, year, 4)
	b = append(b, '-')
	b = appendDigits(b, int(month), 2)
	b = append(b, '-')
	b = appendDigits(b, day, 2)
	b = append(b, 'T')
	b = appendDigits(b, hour, 2)
	b = append(b, ':')
	b = appendDigits(b, minute, 2)
	b = append(b, ':')
	b = appendDigits(b, sec, 2)
	b = append(b, '.')
	b = appendDigits(b, t.Nanosecond()/int(time.Millisecond), 3)
	return append(b, 'Z', '"')
}

// appendDigits appends the n lowest decimal digits of v, 0 <= v.
func appendDigits(b []byte, v, n int) []byte {
	var d [4]byte
	for i := n - 1; i >= 0; i-- {
		d[i] = byte('0' + v%10)
		v /= 10
	}
	return append(b, d[:n]...)
}

// isDayFileName reports whether name is allocations_YYYYMMDD.jsonl with a
// real date.
func isDayFileName(name string) bool {
	day, ok := strings.CutPrefix(name, dayFilePrefix)
	if !ok {
		return false
	}
	day, ok = strings.CutSuffix(day, dayFileSuffix)
	if !ok || len(day) != len(dayLayout) {
		return false
	}
	_, err := time.Parse(dayLayout, day)
	return err == nil
}

// appendJSONL appends the JSONL line of e, with its trailing newline, to b.
// held is the allocation of e.Port before e was applied, or nil.
func appendJSONL(b []byte, e ledger.Event, held *ledger.Allocation) []byte {
	b = append(b, `{"timestamp": `...)
	b = appendTimestamp(b, e.At)
	b = appendStringField(b, "action", e.Type.Action())
	b = appendIntField(b, "port", int64(e.Port))
	switch {
	case e.Allocated != nil:
		p := e.Allocated
		b = appendStringField(b, "service_name", p.ServiceName)
		b = appendStringField(b, "started_by", p.StartedBy)
		b = appendStringField(b, "purpose", p.Purpose)
	case held != nil && e.Conflict == nil && e.RangeChanged == nil:
		b = appendStringField(b, "service_name", held.ServiceName)
		b = appendStringField(b, "started_by", held.StartedBy)
		b = appendStringField(b, "purpose", held.Purpose)
	}
	var id [ulid.EncodedSize]byte
	_ = e.ID.MarshalTextTo(id[:])
	b = append(appendKey(b, "event_id"), '"')
	b = append(append(b, id[:]...), '"')

	switch {
	case e.Allocated != nil:
		p := e.Allocated
		b = appendNonZeroInt(b, "pid", int64(p.PID))
		b = appendMillis(b, "pid_started_at", p.PIDStarted)
		b = appendNonEmpty(b, "health_url", p.HealthURL)
		if p.Lease != 0 {
			b = appendFloatField(b, "lease_s", p.Lease.Seconds())
		}
	case e.PIDRegistered != nil:
		p := e.PIDRegistered
		b = appendIntField(b, "pid", int64(p.PID))
		b = appendMillis(b, "pid_started_at", p.PIDStarted)
		b = appendNonEmpty(b, "cmdline", p.Cmdline)
		b = appendNonEmpty(b, "reason", p.Reason)
	case e.HealthChanged != nil:
		p := e.HealthChanged
		b = appendStringField(b, "from", string(p.From))
		b = appendStringField(b, "to", string(p.To))
		b = appendNonEmpty(b, "reason", p.Reason)
		b = appendBoolField(b, "alive", p.Alive)
		b = appendBoolField(b, "listening", p.Listening)
		b = appendNonEmpty(b, "endpoint", p.Endpoint)
	case e.StatsReported != nil:
		p := e.StatsReported
		b = appendIntField(b, "request_count", p.RequestCount)
		b = appendIntField(b, "error_count", p.ErrorCount)
	case e.Released != nil:
		p := e.Released
		b = appendNonEmpty(b, "reason", p.Reason)
		b = appendNonEmpty(b, "released_by", p.ReleasedBy)
		b = appendFloatField(b, "duration_s", float64(p.DurationMS)/1000)
		b = appendIntField(b, "request_count", p.RequestCount)
		b = appendIntField(b, "error_count", p.ErrorCount)
	case e.Conflict != nil:
		p := e.Conflict
		b = appendNonZeroInt(b, "pid", int64(p.PID))
		b = appendNonEmpty(b, "command", p.Command)
	case e.RangeChanged != nil:
		p := e.RangeChanged
		b = appendStringField(b, "from", p.From.String())
		b = appendStringField(b, "to", p.To.String())
	}
	if e.Imported != nil {
		b = appendStringField(b, "imported_from", e.Imported.File)
		b = appendIntField(b, "imported_line", int64(e.Imported.Line))
	}
	if a := e.Actor; a != nil {
		b = append(appendKey(b, "actor"), `{"via": `...)
		b = appendPyString(b, string(a.Via))
		if a.UID >= 0 {
			b = appendIntField(b, "uid", int64(a.UID))
		}
		b = appendNonZeroInt(b, "pid", int64(a.PID))
		b = appendNonEmpty(b, "token", a.Token)
		b = append(b, '}')
	}
	return append(b, "}\n"...)
}

func appendKey(b []byte, key string) []byte {
	b = append(b, `, "`...)
	b = append(b, key...)
	return append(b, `": `...)
}

func appendStringField(b []byte, key, v string) []byte {
	return appendPyString(appendKey(b, key), v)
}

func appendNonEmpty(b []byte, key, v string) []byte {
	if v == "" {
		return b
	}
	return appendStringField(b, key, v)
}

func appendIntField(b []byte, key string, v int64) []byte {
	return strconv.AppendInt(appendKey(b, key), v, 10)
}

func appendNonZeroInt(b []byte, key string, v int64) []byte {
	if v == 0 {
		return b
	}
	return appendIntField(b, key, v)
}

func appendBoolField(b []byte, key string, v bool) []byte {
	return strconv.AppendBool(appendKey(b, key), v)
}

// appendMillis writes a Unix millisecond time as RFC 3339, or nothing for 0.
func appendMillis(b []byte, key string, ms int64) []byte {
	if ms == 0 {
		return b
	}
	return appendStringField(b, key, ledger.FormatTime(time.UnixMilli(ms)))
}

// appendFloatField writes f as Python's repr does for the values the log
// holds (durations in seconds, below 1e16): the shortest digits that read
// back to f, and always a decimal point, so 12 is "12.0".
func appendFloatField(b []byte, key string, f float64) []byte {
	b = appendKey(b, key)
	start := len(b)
	b = strconv.AppendFloat(b, f, 'f', -1, 64)
	for _, c := range b[start:] {
		if c == '.' {
			return b
		}
	}
	return append(b, ".0"...)
}

const hexDigits = "0123456789abcdef"

// appendPyString appends s as a JSON string the way Python's json.dumps
// writes it by default (ensure_ascii): quote and backslash escaped, \n \r
// \t \b \f in their short forms, and every other byte outside printable
// ASCII as \uXXXX, characters beyond the Basic Multilingual Plane as a
// surrogate pair. Invalid UTF-8 is written as \ufffd, so the line is always
// valid JSON.
func appendPyString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c < 0x7f && c != '"' && c != '\\' {
			i++
			continue
		}
		b = append(b, s[start:i]...)
		if c < utf8.RuneSelf {
			switch c {
			case '"':
				b = append(b, `\"`...)
			case '\\':
				b = append(b, `\\`...)
			case '\n':
				b = append(b, `\n`...)
			case '\r':
				b = append(b, `\r`...)
			case '\t':
				b = append(b, `\t`...)
			case '\b':
				b = append(b, `\b`...)
			case '\f':
				b = append(b, `\f`...)
			default:
				b = appendU4(b, rune(c))
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r > 0xFFFF {
			r -= 0x10000
			b = appendU4(b, 0xD800+(r>>10))
			b = appendU4(b, 0xDC00+(r&0x3FF))
		} else {
			b = appendU4(b, r) // utf8.RuneError for invalid bytes
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

func appendU4(b []byte, r rune) []byte {
	return append(b, '\\', 'u', hexDigits[r>>12&0xF], hexDigits[r>>8&0xF], hexDigits[r>>4&0xF], hexDigits[r&0xF])
}
