package ledger_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/matryer/is"
	"github.com/portledger/portledger/ledger"
)

// withID returns e with the test ID and its time.
func withID(e ledger.Event) ledger.Event {
	e.ID = testID
	e.At = ledger.IDTime(testID)
	return e
}

func TestEventJSONShape(t *testing.T) {
	evs := sampleEvents()
	tests := []struct {
		name string
		e    ledger.Event
		want map[string]any
	}{
		{"allocated", evs[0], map[string]any{
			"type": "allocated", "port": 8000.0, "service_name": "api", "started_by": "alice", "purpose": "dev server",
			"pid": 4242.0, "pid_started_at": "2025-11-15T14:29:59.123Z", "health_url": "http://127.0.0.1:8000/healthz", "lease_s": 90.0,
		}},
		{"pid_registered", evs[1], map[string]any{
			"type": "pid_registered", "port": 8001.0, "pid": 99999.0, "pid_started_at": "2025-11-15T14:29:59.456Z",
			"cmdline": "python -m http.server 8001",
			"reason":  "process 4242 exited; pid 99999, a descendant of the registered process, listens on port 8001: it holds the port now",
		}},
		{"health_changed", evs[2], map[string]any{
			"type": "health_changed", "port": 8002.0, "from": "starting", "to": "unhealthy", "reason": "not listening for 3 checks",
			"alive": true, "listening": false, "endpoint": "GET /healthz: 503",
		}},
		{"stats_reported", evs[4], map[string]any{
			"type": "stats_reported", "port": 8004.0, "request_count": float64(1 << 40), "error_count": 17.0,
		}},
		{"released", evs[5], map[string]any{
			"type": "released", "port": 8005.0, "reason": "process exited", "released_by": "watchdog",
			"duration_s": 3723.004, "request_count": 12.0, "error_count": 3.0,
		}},
		{"conflict_detected", evs[6], map[string]any{
			"type": "conflict_detected", "port": 8006.0, "pid": 31337.0, "command": "nc -l 8006",
		}},
		{"range_changed", evs[7], map[string]any{
			"type": "range_changed", "port": 0.0, "from": "8000-8100", "to": "9000-9499",
		}},
		{"imported", withImported(evs[6:7])[0], map[string]any{
			"type": "conflict_detected", "port": 8006.0, "pid": 31337.0, "command": "nc -l 8006",
			"imported_from": "logs/port_manager/allocations_20251115.jsonl:1000",
		}},
		{"actor over the socket", withActors(evs[4:5])[0], map[string]any{
			"type": "stats_reported", "port": 8004.0, "request_count": float64(1 << 40), "error_count": 17.0,
			"actor": map[string]any{"via": "socket", "uid": 1000.0, "pid": 4242.0},
		}},
		{"actor over tcp", withActors(evs[3:5])[1], map[string]any{
			"type": "stats_reported", "port": 8004.0, "request_count": float64(1 << 40), "error_count": 17.0,
			"actor": map[string]any{"via": "tcp", "token": "default"},
		}},
		{"actor root, local", withActors(evs[2:5])[2], map[string]any{
			"type": "stats_reported", "port": 8004.0, "request_count": float64(1 << 40), "error_count": 17.0,
			"actor": map[string]any{"via": "local", "uid": 0.0, "pid": 1.0},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			b, err := json.Marshal(withID(tt.e))
			is.NoErr(err) // marshal
			var got map[string]any
			is.NoErr(json.Unmarshal(b, &got)) // the JSON is one flat object
			tt.want["id"] = testID.String()
			tt.want["at"] = "2025-11-15T14:30:00.123Z"
			is.Equal(got, tt.want) // exactly the flat fields of that type
		})
	}
}

func TestEventJSONRoundTrip(t *testing.T) {
	evs := allSamples()
	// Durations that are not whole seconds must come back to the millisecond.
	for _, ms := range []int64{1, 999, 1001, 123456789, 86400001, 7 * 24 * 3600 * 1000} {
		evs = append(evs,
			ledger.Event{Type: ledger.EventReleased, Port: 8000, Released: &ledger.Released{DurationMS: ms}},
			ledger.Event{Type: ledger.EventAllocated, Port: 8000, Allocated: &ledger.Allocated{ServiceName: "s", Lease: time.Duration(ms) * time.Millisecond}},
		)
	}
	for _, e := range evs {
		t.Run(string(e.Type), func(t *testing.T) {
			is := is.New(t)
			want := withID(e)
			b, err := json.Marshal(want)
			is.NoErr(err) // marshal
			var got ledger.Event
			is.NoErr(json.Unmarshal(b, &got)) // unmarshal
			is.Equal(got, want)               // the event comes back equal
		})
	}
}

func TestEventJSONRefuses(t *testing.T) {
	tests := []struct {
		name string
		in   string
	}{
		{"unknown type", `{"id":"` + testID.String() + `","type":"exploded","at":"2025-11-15T14:30:00.123Z","port":8000}`},
		{"bad time", `{"id":"` + testID.String() + `","type":"stats_reported","at":"yesterday","port":8000}`},
		{"bad range", `{"id":"` + testID.String() + `","type":"range_changed","at":"2025-11-15T14:30:00.123Z","from":"x","to":"8000-8100"}`},
		{"bad id", `{"id":"nope","type":"stats_reported","at":"2025-11-15T14:30:00.123Z","port":8000}`},
		{"not an object", `[1,2]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			var e ledger.Event
			is.True(json.Unmarshal([]byte(tt.in), &e) != nil) // refused
		})
	}
}
