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

// unixDay returns the number of t's UTC date: days since 1970-01-01,
// negative before it. Two times have the same day file when they have the
// same unixDay.
func unixDay(t time.Time) int64 {
	s := t.Unix()
	d := s / 86_400
	if s%86_400 < 0 {
		d--
	}
	return d
}

// appendTimestamp appends t as ledger.FormatTime writes it, quoted: the
// UTC time to the millisecond, 2025-11-15T14:30:00.000Z. It works the date
// out of the Unix milliseconds itself and writes the digits two at a time,
// without time.Format's parsing of a layout and its string (a sixth of a
// replay's time) or Date and Clock (BenchmarkAppendJSONL).
func appendTimestamp(b []byte, t time.Time) []byte {
	ms := t.UnixMilli()
	if ms < 0 || ms >= maxTimestampMillis {
		return appendPyString(b, ledger.FormatTime(t))
	}
	year, month, day := civilDate(ms / msPerDay)
	ms %= msPerDay
	b = append(b, '"')
	b = appendTwo(appendTwo(b, year/100), year%100)
	b = appendTwo(append(b, '-'), month)
	b = appendTwo(append(b, '-'), day)
	b = appendTwo(append(b, 'T'), int(ms/3_600_000))
	b = appendTwo(append(b, ':'), int(ms/60_000%60))
	b = appendTwo(append(b, ':'), int(ms/1000%60))
	milli := int(ms % 1000)
	b = append(b, '.', byte('0'+milli/100))
	b = appendTwo(b, milli%100)
	return append(b, 'Z', '"')
}

const (
	msPerDay = 86_400_000
	// maxTimestampMillis is 10000-01-01 in Unix milliseconds: the dates
	// with four-digit years, which appendTimestamp writes itself.
	maxTimestampMillis = 253_402_300_800_000
)

// civilDate returns the proleptic Gregorian date of the day that is days
// after 1970-01-01 (0 <= days), by the arithmetic of eras of 400 years.
func civilDate(days int64) (year, month, day int) {
	z := days + 719_468 // days since 0000-03-01
	era := z / 146_097
	doe := z - era*146_097                                    // day of the era, [0, 146096]
	yoe := (doe - doe/1_460 + doe/36_524 - doe/146_096) / 365 // year of the era, [0, 399]
	doy := doe - (365*yoe + yoe/4 - yoe/100)                  // day of the year from March 1, [0, 365]
	mp := (5*doy + 2) / 153                                   // month from March, [0, 11]
	day = int(doy - (153*mp+2)/5 + 1)
	month = int(mp + 3)
	if month > 12 {
		month -= 12
	}
	year = int(yoe + era*400)
	if month <= 2 {
		year++
	}
	return year, month, day
}

// twoDigits holds "00" to "99".
const twoDigits = "00010203040506070809101112131415161718192021222324252627282930313233343536373839404142434445464748495051525354555657585960616263646566676869707172737475767778798081828384858687888990919293949596979899"

// appendTwo appends v, 0 <= v < 100, as two digits.
func appendTwo(b []byte, v int) []byte {
	return append(b, twoDigits[2*v], twoDigits[2*v+1])
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
	return appendTimestamp(appendKey(b, key), time.UnixMilli(ms))
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

// pyPlain tells the bytes appendPyString copies as they are: printable
// ASCII but the quote and the backslash.
var pyPlain = func() (t [256]bool) {
	for c := 0x20; c < 0x7f; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

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
		if pyPlain[c] {
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
