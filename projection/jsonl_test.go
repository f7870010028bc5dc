package projection

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/matryer/is"
	"github.com/portledger/portledger/ledger"
)

// wantLines are the JSONL lines of scenario(), in order, with %s for the
// event's ID. They are what Python's json.dumps writes for the same dicts.
var wantLines = []string{
	// allocations_20251115.jsonl
	`{"timestamp": "2025-11-15T23:58:30.000Z", "action": "allocate", "port": 8000, "service_name": "grace_backend", "started_by": "serve.py", "purpose": "Main Grace API server", "event_id": "%s", "pid": 12345, "pid_started_at": "2025-11-15T14:30:00.000Z", "health_url": "http://127.0.0.1:8000/health"}`,
	`{"timestamp": "2025-11-15T23:58:45.000Z", "action": "register_pid", "port": 8000, "service_name": "grace_backend", "started_by": "serve.py", "purpose": "Main Grace API server", "event_id": "%s", "pid": 12346, "pid_started_at": "2025-11-15T14:30:01.000Z", "cmdline": "python serve.py --name \"grace\"\t--debug"}`,
	`{"timestamp": "2025-11-15T23:59:00.000Z", "action": "health_change", "port": 8000, "service_name": "grace_backend", "started_by": "serve.py", "purpose": "Main Grace API server", "event_id": "%s", "from": "starting", "to": "healthy", "reason": "listening", "alive": true, "listening": true, "endpoint": "ok"}`,
	`{"timestamp": "2025-11-15T23:59:00.000Z", "action": "allocate", "port": 8001, "service_name": "learning", "started_by": "serve.py", "purpose": "Learning-only", "event_id": "%s"}`,
	`{"timestamp": "2025-11-15T23:59:15.000Z", "action": "stats", "port": 8000, "service_name": "grace_backend", "started_by": "serve.py", "purpose": "Main Grace API server", "event_id": "%s", "request_count": 120, "error_count": 3}`,
	`{"timestamp": "2025-11-15T23:59:30.000Z", "action": "conflict", "port": 8050, "event_id": "%s", "pid": 999, "command": "nc -l 8050"}`,
	`{"timestamp": "2025-11-15T23:59:45.000Z", "action": "allocate", "port": 8002, "service_name": "remote", "started_by": "ci", "purpose": "Fernzugriff \u2013 \u00fcn\u00ef \ud83d\ude00 \u2028 <&> \\ \u0001", "event_id": "%s", "lease_s": 90.0}`,
	// allocations_20251116.jsonl
	`{"timestamp": "2025-11-16T00:00:00.000Z", "action": "release", "port": 8000, "service_name": "grace_backend", "started_by": "serve.py", "purpose": "Main Grace API server", "event_id": "%s", "reason": "shutdown", "released_by": "serve.py", "duration_s": 12.345, "request_count": 120, "error_count": 3, "actor": {"via": "socket", "uid": 1000, "pid": 4242}}`,
	`{"timestamp": "2025-11-16T00:00:15.000Z", "action": "range", "port": 0, "event_id": "%s", "from": "8000-8100", "to": "8000-8200", "actor": {"via": "tcp", "token": "default"}}`,
	`{"timestamp": "2025-11-16T00:00:30.000Z", "action": "release", "port": 8001, "service_name": "learning", "started_by": "serve.py", "purpose": "Learning-only", "event_id": "%s", "reason": "dead", "released_by": "watchdog", "duration_s": 60.0, "request_count": 0, "error_count": 0}`,
	`{"timestamp": "2025-11-16T00:00:45.000Z", "action": "register_pid", "port": 9999, "event_id": "%s", "pid": 5}`,
	`{"timestamp": "2025-11-16T00:01:00.000Z", "action": "allocate", "port": 8003, "service_name": "old", "started_by": "import", "purpose": "", "event_id": "%s", "imported_from": "allocations_20251114.jsonl", "imported_line": 3}`,
}

func TestJSONLLines(t *testing.T) {
	is := is.New(t)
	log, layout := mustOpenLog(t)
	evs := liveFiles(t, log, layout, scenario())
	is.Equal(len(evs), len(wantLines)) // one line per event

	var got []string
	for _, day := range []string{"allocations_20251115.jsonl", "allocations_20251116.jsonl"} {
		b, err := os.ReadFile(filepath.Join(layout.LogsDir(), day))
		is.NoErr(err)                               // a file for each UTC day
		is.True(strings.HasSuffix(string(b), "\n")) // every line complete
		got = append(got, strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")...)
	}
	is.Equal(len(got), len(evs)) // 7 lines on the 15th, 5 on the 16th
	for i, line := range got {
		is.Equal(line, fmt.Sprintf(wantLines[i], evs[i].ID)) // the line, byte for byte

		var m map[string]any
		is.NoErr(json.Unmarshal([]byte(line), &m)) // every line is JSON
		is.Equal(m["event_id"], evs[i].ID.String())
		if m["action"] == "release" {
			is.True(m["service_name"] != nil) // releases name the service
			is.True(m["duration_s"] != nil)   // and how long it was held
		}
	}
	var m struct{ Purpose string }
	is.NoErr(json.Unmarshal([]byte(got[6]), &m))                  // escaped purpose
	is.Equal(m.Purpose, "Fernzugriff – ünï 😀 \u2028 <&> \\ \x01") // reads back as written
}

func TestAppendPyString(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string // what Python's json.dumps writes
	}{
		{name: "plain", in: "grace_backend", want: `"grace_backend"`},
		{name: "empty", in: "", want: `""`},
		{name: "quote and backslash", in: `say "hi" \o/`, want: `"say \"hi\" \\o/"`},
		{name: "short escapes", in: "a\nb\rc\td\be\ff", want: `"a\nb\rc\td\be\ff"`},
		{name: "other control bytes", in: "\x00\x1f\x7f", want: `"\u0000\u001f\u007f"`},
		{name: "latin", in: "déjà", want: `"d\u00e9j\u00e0"`},
		{name: "line separators", in: "\u2028\u2029", want: `"\u2028\u2029"`},
		{name: "astral", in: "😀", want: `"\ud83d\ude00"`},
		{name: "html stays", in: "<a&b>", want: `"<a&b>"`},
		{name: "printable edges", in: " ~", want: `" ~"`},
		{name: "invalid utf-8", in: "a\xffb", want: `"a\ufffdb"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			got := string(appendPyString(nil, tt.in))
			is.Equal(got, tt.want) // Python's form
			var back string
			is.NoErr(json.Unmarshal([]byte(got), &back)) // valid JSON
			if tt.name != "invalid utf-8" {
				is.Equal(back, tt.in) // reads back to the input
			}
		})
	}
}

func TestAppendFloatField(t *testing.T) {
	tests := []struct {
		in   float64
		want string
	}{
		{12.345, `, "x": 12.345`},
		{60, `, "x": 60.0`},
		{0, `, "x": 0.0`},
		{0.001, `, "x": 0.001`},
		{86400.5, `, "x": 86400.5`},
	}
	for _, tt := range tests {
		is := is.New(t)
		is.Equal(string(appendFloatField(nil, "x", tt.in)), tt.want) // Python's repr
	}
}

func TestIsDayFileName(t *testing.T) {
	is := is.New(t)
	is.True(isDayFileName("allocations_20251115.jsonl"))   // a day file
	is.True(!isDayFileName("allocations_20251315.jsonl"))  // month 13
	is.True(!isDayFileName("allocations_2025111.jsonl"))   // short date
	is.True(!isDayFileName("allocations_20251115.json"))   // other suffix
	is.True(!isDayFileName("notes_20251115.jsonl"))        // other prefix
	is.True(!isDayFileName("allocations_20251115.jsonl~")) // editor backup
}

func TestUnixDayNamesTheDayFile(t *testing.T) {
	is := is.New(t)
	for _, pair := range [][2]time.Time{
		{time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC), time.Date(2025, 3, 1, 23, 59, 59, 999_999_999, time.UTC)},
		{time.Date(1969, 12, 31, 0, 0, 0, 0, time.UTC), time.Date(1969, 12, 31, 23, 59, 59, 0, time.UTC)},
		{time.Date(2025, 3, 1, 0, 30, 0, 0, time.FixedZone("CET", 3600)), time.Date(2025, 2, 28, 12, 0, 0, 0, time.UTC)},
	} {
		is.Equal(unixDay(pair[0]), unixDay(pair[1]))         // the same UTC date
		is.Equal(dayFileName(pair[0]), dayFileName(pair[1])) // the same file
	}
	for _, pair := range [][2]time.Time{
		{time.Date(2025, 3, 1, 23, 59, 59, 999_999_999, time.UTC), time.Date(2025, 3, 2, 0, 0, 0, 0, time.UTC)},
		{time.Date(1969, 12, 31, 23, 59, 59, 999_999_999, time.UTC), time.Unix(0, 0)},
	} {
		is.Equal(unixDay(pair[0])+1, unixDay(pair[1]))        // the next UTC date
		is.True(dayFileName(pair[0]) != dayFileName(pair[1])) // the next file
	}
}

func TestAppendTimestampIsFormatTimeQuoted(t *testing.T) {
	for _, tm := range []time.Time{
		time.Date(2025, 11, 15, 14, 30, 0, 0, time.UTC),
		time.Date(2025, 1, 2, 3, 4, 5, 6_999_999, time.UTC),
		time.Date(1999, 12, 31, 23, 59, 59, 999_999_999, time.FixedZone("x", 3600)),
		time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.UnixMilli(1735689600123),
		time.Date(1969, 12, 31, 23, 59, 59, 999_999_999, time.UTC), // just before the epoch
		time.Unix(0, 0),
		time.Date(2000, 2, 29, 12, 0, 0, 0, time.UTC), // leap days of a 400th year
		time.Date(2100, 2, 28, 23, 59, 59, 0, time.UTC),
		time.Date(2100, 3, 1, 0, 0, 0, 0, time.UTC), // 2100 is not a leap year
		time.Date(2024, 12, 31, 23, 59, 59, 999_000_000, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 999_999_999, time.UTC), // the last four-digit year
	} {
		want := string(appendPyString(nil, ledger.FormatTime(tm)))
		if got := string(appendTimestamp(nil, tm)); got != want {
			t.Errorf("appendTimestamp(%v) = %s, want %s", tm, got, want)
		}
	}
	// Every day from 1970 to 2400, at a time of day that moves through
	// the day's milliseconds, and random instants up to year 9999.
	rng := rand.New(rand.NewPCG(1, 2))
	for day := int64(0); day < 157_000; day++ {
		tm := time.UnixMilli(day*86_400_000 + (day*7_919_777)%86_400_000)
		want := string(appendPyString(nil, ledger.FormatTime(tm)))
		if got := string(appendTimestamp(nil, tm)); got != want {
			t.Fatalf("appendTimestamp(%v) = %s, want %s", tm, got, want)
		}
	}
	for range 100_000 {
		tm := time.UnixMicro(rng.Int64N(253_402_300_800_000_000))
		want := string(appendPyString(nil, ledger.FormatTime(tm)))
		if got := string(appendTimestamp(nil, tm)); got != want {
			t.Fatalf("appendTimestamp(%v) = %s, want %s", tm, got, want)
		}
	}
}
