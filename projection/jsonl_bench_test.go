package projection

import (
	"fmt"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/portledger/portledger/ledger"
)

// BenchmarkAppendJSONL formats the lines of the events a busy CI host
// writes (the fixture's mix: stats, health changes, PIDs, allocations,
// releases, most on a held port), as a replay does. One op is one line.
func BenchmarkAppendJSONL(b *testing.B) {
	held := &ledger.Allocation{ServiceName: "ci-0161570-team04-api", StartedBy: "ci-runner-3", Purpose: "integration tests"}
	at := time.Date(2025, 3, 1, 0, 29, 31, 200e6, time.UTC)
	var evs []ledger.Event
	for i := range 1000 {
		e := ledger.Event{ID: ulid.MustNew(ulid.Timestamp(at), nil), At: at, Port: 8000 + i%101}
		switch i % 10 {
		case 0:
			e.Type, e.Allocated = ledger.EventAllocated, &ledger.Allocated{ServiceName: fmt.Sprintf("ci-%07d-team04-api", i),
				StartedBy: "ci-runner-3", Purpose: "integration tests", HealthURL: "http://127.0.0.1:8013/healthz"}
		case 1:
			e.Type, e.PIDRegistered = ledger.EventPIDRegistered, &ledger.PIDRegistered{PID: 10000 + i,
				PIDStarted: at.UnixMilli(), Cmdline: "/usr/bin/python3 -m uvicorn app:main --port 8013"}
		case 2, 3:
			e.Type, e.HealthChanged = ledger.EventHealthChanged, &ledger.HealthChanged{From: ledger.HealthStarting,
				To: ledger.HealthHealthy, Reason: "listening", Alive: true, Listening: true, Endpoint: "ok"}
		case 4:
			e.Type, e.Released = ledger.EventReleased, &ledger.Released{Reason: "process exited", ReleasedBy: "watchdog",
				DurationMS: 1177488, RequestCount: 476}
		default:
			e.Type, e.StatsReported = ledger.EventStatsReported, &ledger.StatsReported{RequestCount: int64(476 + i), ErrorCount: 1}
		}
		evs = append(evs, e)
		at = at.Add(3153 * time.Millisecond)
	}
	buf := make([]byte, 0, 1<<20)
	var n int64
	for i := 0; b.Loop(); i++ {
		e := evs[i%len(evs)]
		h := held
		if e.Allocated != nil {
			h = nil
		}
		buf = appendJSONL(buf[:0], e, h)
		n += int64(len(buf))
	}
	b.SetBytes(n / int64(b.N))
}
