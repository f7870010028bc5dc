package commands_test

import (
	"context"
	"github.com/portledger/portledger/internal/ledgertest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/matryer/is"
	"github.com/oklog/ulid/v2"
	"github.com/portledger/portledger/commands"
	"github.com/portledger/portledger/ledger"
	"github.com/portledger/portledger/projection"
)

// The original port manager's files, as it wrote them.
const (
	oldRegistry = `{
  "allocations": {
    "8000": {
      "port": 8000,
      "service_name": "grace_backend",
      "started_by": "serve.py",
      "purpose": "Main Grace API server",
      "pid": 12345,
      "allocated_at": "2025-11-16T09:00:00Z",
      "health_status": "active",
      "request_count": 10,
      "error_count": 1
    },
    "8001": {"port": 8001, "service_name": "learning", "started_by": "serve.py", "purpose": "Learning", "pid": 2222, "allocated_at": "2025-11-15T10:00:00Z", "health_status": "active", "request_count": 0, "error_count": 0},
    "8005": {"port": 8005, "service_name": "remote", "started_by": "serve.py", "purpose": "Remote", "pid": 5555, "allocated_at": "2025-11-16T11:00:00Z", "health_status": "active", "request_count": 0, "error_count": 0},
    "8006": {"port": 8006, "service_name": "old_thing", "started_by": "serve.py", "purpose": "", "pid": 6666, "allocated_at": "2025-11-16T11:30:00Z", "health_status": "active", "request_count": 0, "error_count": 0}
  }
}
`
	oldLog15 = `{"timestamp": "2025-11-15T09:00:00Z", "action": "allocate", "port": 8000, "service_name": "grace_backend", "started_by": "serve.py", "purpose": "Main Grace API server"}
{"timestamp": "2025-11-15T09:00:01Z", "action": "register_pid", "port": 8000, "pid": 11111}
{"timestamp": "2025-11-15T10:00:00Z", "action": "allocate", "port": 8001, "service_name": "learning", "started_by": "serve.py", "purpose": "Learning"}
{"timestamp": "2025-11-15T12:00:00Z", "action": "release", "port": 8001, "reason": "shutdown", "duration_s": 7200}
{"timestamp": "2025-11-15T12:30:00Z", "action": "allocate", "port": 80
{"timestamp": "2025-11-15T13:00:00Z", "action": "health", "port": 8000, "health_status": "whatever"}
{"timestamp": "2025-11-15T18:00:00Z", "action": "release", "port": 8000}
`
	oldLog16 = `{"timestamp": "2025-11-16T09:00:00Z", "action": "allocate", "port": 8000, "service_name": "grace_backend", "started_by": "serve.py", "purpose": "Main Grace API server"}
{"timestamp": "2025-11-16T09:30:00Z", "action": "allocate", "port": 8002, "service_name": "scratch", "started_by": "notebook", "purpose": "try"}
{"timestamp": "2025-11-16T10:00:00Z", "action": "frobnicate", "port": 8003}
{"timestamp": "yesterday", "action": "allocate", "port": 8004, "service_name": "x"}

{"timestamp": "2025-11-16T10:30:00Z", "action": "allocate", "port": 8001, "service_name": "learning", "started_by": "serve.py", "purpose": "Learning"}
{"timestamp": "2025-11-16T10:45:00Z", "action": "release", "port": 8001, "reason": "done", "duration_s": 900}
`
)

// writeOriginal writes the original port manager's files under a new root.
func writeOriginal(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	layout := ledger.Layout{Dir: root}
	for path, data := range map[string]string{
		layout.Registry(): oldRegistry,
		filepath.Join(layout.LogsDir(), "allocations_20251115.jsonl"): oldLog15,
		filepath.Join(layout.LogsDir(), "allocations_20251116.jsonl"): oldLog16,
	} {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// The old tool last wrote its registry at noon on the 16th: the last
	// moment the files speak of.
	if err := os.Chtimes(layout.Registry(), oldEnd, oldEnd); err != nil {
		t.Fatal(err)
	}
	return root
}

// oldEnd is the modification time of the old registry of writeOriginal.
var oldEnd = utc("2025-11-16T12:00:00Z")

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestReadOriginal(t *testing.T) {
	is := is.New(t)
	orig, err := commands.ReadOriginal(writeOriginal(t))
	is.NoErr(err)
	is.Equal(len(orig.Files), 3) // the registry and two logs
	is.Equal(orig.Lines, 13)     // blank lines aside
	is.Equal(orig.Malformed, []ledger.ImportProblem{
		{File: "allocations_20251115.jsonl", Line: 5, Reason: orig.Malformed[0].Reason},
		{File: "allocations_20251116.jsonl", Line: 4, Reason: orig.Malformed[1].Reason},
	}) // the cut line and the bad timestamp, by file and line
	is.True(strings.Contains(orig.Malformed[1].Reason, "timestamp")) // says what was wrong

	notes := map[string]bool{}
	for _, w := range orig.Warnings {
		notes[w.File+":"+strconv.Itoa(w.Line)] = true
	}
	is.True(notes["allocations_20251115.jsonl:6"]) // a health line without a known state
	is.True(notes["allocations_20251116.jsonl:3"]) // an unknown action
	is.True(notes[commands.RegistryFile+":14"])    // the stale 8001 entry of the registry
	is.True(notes["allocations_20251116.jsonl:2"]) // 8002, never released, closed by the import

	// Time order, IDs from the files, every event marked with its source.
	for i, e := range orig.Events {
		is.True(e.Imported != nil) // marked as imported
		if i > 0 {
			is.True(orig.Events[i-1].ID.Compare(e.ID) < 0) // in time order
		}
	}
	is.Equal(len(orig.Events), 19)  // 16 from the lines, 3 releases at the end of the records
	is.True(orig.End.Equal(oldEnd)) // the registry's time, after the newest line
	for _, e := range orig.Events {
		if e.Type == ledger.EventReleased && e.Released.Reason == "end of the original records" {
			is.True(e.At.IsZero() || e.At.Equal(oldEnd)) // at the end of the records
			is.Equal(ledger.IDTime(e.ID), oldEnd)        // at the end of the records
		}
	}
	again, err := commands.ReadOriginal(writeOriginal(t))
	is.NoErr(err)
	for i := range again.Events {
		is.Equal(again.Events[i].ID, orig.Events[i].ID) // the same files give the same IDs
	}
}

func TestImportIntoThePast(t *testing.T) {
	is := is.New(t)
	ctx := context.Background()
	clock := ledgertest.NewClock(t0, 0)
	l, log := mustOpenAudit(t, clock, 3)
	is.NoErr(l.SetRange(ctx, ledger.DefaultRange))

	// The ledger's own history, after the old files' times: snapshots are
	// taken every 3 events.
	for i, svc := range []string{"a", "b", "c", "d"} {
		clock.Set(t0.Add(time.Duration(i) * time.Minute))
		a, err := l.Allocate(ctx, ledger.AllocateRequest{ServiceName: svc, Port: 8050 + i})
		is.NoErr(err)
		if svc != "d" {
			_, err = l.Release(ctx, ledger.ReleaseRequest{Port: a.Port, Reason: "done"})
			is.NoErr(err)
		}
	}
	clock.Set(t0.Add(10 * time.Minute))
	held, err := l.Allocate(ctx, ledger.AllocateRequest{ServiceName: "native", Port: 8006})
	is.NoErr(err) // a port that the old registry also lists
	before := allEvents(t, log)
	_, _, hadSnap, err := log.Snapshot(ulid.ULID{})
	is.NoErr(err)
	is.True(hadSnap) // snapshots exist before the import

	root := writeOriginal(t)
	orig, err := commands.ReadOriginal(root)
	is.NoErr(err)
	// The old registry's live allocations end with the records: the
	// import writes the past only, and is taken whole.
	past := orig.Events
	res, err := l.Import(ctx, past)
	is.NoErr(err)
	is.Equal(res.Imported, len(past)) // the whole history
	is.Equal(res.Duplicates, 0)       // nothing was there

	after := allEvents(t, log)
	is.Equal(len(after), len(before)+len(past))
	n, err := log.Count()
	is.NoErr(err)
	is.Equal(n, uint64(len(after))) // the count follows
	byID := map[ulid.ULID]ledger.Event{}
	for _, e := range after {
		byID[e.ID] = e
	}
	for _, e := range before {
		is.True(reflect.DeepEqual(byID[e.ID], e)) // the ledger's own events are unchanged
	}

	// The snapshots taken again after the import match the events.
	checked, brk, err := projection.CheckSnapshots(log, nil)
	is.NoErr(err)
	is.True(brk == nil)  // every snapshot is the fold of its events
	is.True(checked > 0) // and some were compared

	// Now: the present is the ledger's own, the native holder of 8006 and d.
	reg := l.Registry()
	is.Equal(len(reg.Allocs), 2)                     // nothing imported holds a port now
	is.Equal(reg.Allocs[8006].EventID, held.EventID) // the native holder stays
	is.Equal(reg.Allocs[8001], nil)                  // released in the logs
	is.Equal(reg.Allocs[8002], nil)                  // closed by the import
	is.Equal(reg.Allocs[8004], nil)                  // the malformed line
	is.Equal(reg.Allocs[8000+1000], nil)
	// Just before the end of the records: the old registry's live allocations.
	was, err := projection.StateAt(log, ledger.UntilID(oldEnd.Add(-time.Minute)))
	is.NoErr(err)
	is.Equal(was.Allocs[8000].ServiceName, "grace_backend")
	is.Equal(was.Allocs[8000].PID, 12345)                         // from the registry
	is.Equal(was.Allocs[8000].HealthStatus, ledger.HealthHealthy) // "active"
	is.Equal(was.Allocs[8000].RequestCount, int64(10))
	is.Equal(was.Allocs[8005].ServiceName, "remote")
	end, err := l.Who(ctx, 8000, ledger.UntilID(oldEnd.Add(time.Minute)))
	is.NoErr(err)
	is.Equal(end.Holder, nil)                                            // history after the end
	is.Equal(end.Previous.Release.Reason, "end of the original records") // saying why
	is.Equal(end.Previous.Release.At, oldEnd)                            // at the registry's time

	// The registry at every event equals the fold, from the retaken snapshots.
	for _, e := range after {
		want := foldUntil(after, e.ID)
		got, err := projection.StateAt(log, e.ID)
		is.NoErr(err)
		is.Equal(got.Count, want.Count) // snapshots fold the whole past
		if !reflect.DeepEqual(got.Allocations(), want.Allocations()) {
			t.Fatalf("at %s: StateAt gives %+v, the fold gives %+v", e.ID, got.Allocations(), want.Allocations())
		}
	}
	is.True(reflect.DeepEqual(l.Registry().Allocations(), foldUntil(after, ledger.UntilID(clock.Now())).Allocations())) // the live registry too

	// Who held 8000 on the 15th at noon, and why was it released?
	ans, err := l.Who(ctx, 8000, ledger.UntilID(utc("2025-11-15T12:00:00Z")))
	is.NoErr(err)
	is.Equal(ans.Holder.Allocation.ServiceName, "grace_backend")
	is.Equal(ans.Holder.Allocation.PID, 11111)                        // the pid of that day
	is.Equal(ans.Holder.Release.At, utc("2025-11-15T18:00:00Z"))      // released at 18:00
	is.Equal(time.Duration(ans.Holder.Release.Duration), 9*time.Hour) // computed from the lines
	// 8001 at midnight: free, between two tenures of learning.
	ans, err = l.Who(ctx, 8001, ledger.UntilID(utc("2025-11-16T00:00:00Z")))
	is.NoErr(err)
	is.Equal(ans.Holder, nil)
	is.Equal(ans.Previous.Release.Reason, "shutdown")
	is.Equal(ans.Next.Allocation.AllocatedAt, utc("2025-11-16T10:30:00Z"))

	hist, err := l.History(ctx, ledger.HistoryQuery{Port: 8001})
	is.NoErr(err)
	is.Equal(len(hist), 4) // two allocations, two releases
	is.Equal(*hist[0].Imported, ledger.ImportSource{File: "allocations_20251115.jsonl", Line: 3})

	// Twice: nothing new.
	again, err := commands.ReadOriginal(root)
	is.NoErr(err)
	res, err = l.Import(ctx, again.Events)
	is.NoErr(err)
	is.Equal(res.Imported, 0)           // nothing twice
	is.Equal(res.Duplicates, len(past)) // all known
	is.Equal(len(allEvents(t, log)), len(after))

	// Refused: an event without a source, one in the future.
	bad := again.Events[0]
	bad.Imported = nil
	_, err = l.Import(ctx, []ledger.Event{bad})
	is.Equal(ledger.ErrorCode(err), ledger.EINVALID) // no source
	future := again.Events[0]
	future.ID = ledger.SinceID(clock.Now().Add(time.Hour))
	_, err = l.Import(ctx, []ledger.Event{future})
	is.Equal(ledger.ErrorCode(err), ledger.EINVALID) // in the future

	// The ledger keeps working: the next allocation gets a fresh ID after everything.
	clock.Set(t0.Add(time.Hour))
	x, err := l.Allocate(ctx, ledger.AllocateRequest{ServiceName: "after_import"})
	is.NoErr(err)
	is.True(x.Port != 8006) // the native holder's port is taken
}

// closeHolds adds, for every port that evs leave held, an imported release
// 1 ms after the port's last event, so that the import writes the past only.
func closeHolds(evs []ledger.Event) []ledger.Event {
	held := map[int]ledger.Event{}
	last := map[int]ulid.ULID{}
	for _, e := range evs {
		switch e.Type {
		case ledger.EventAllocated:
			held[e.Port] = e
		case ledger.EventReleased:
			delete(held, e.Port)
		}
		last[e.Port] = e.ID
	}
	out := slices.Clone(evs)
	for port := range held {
		out = append(out, ledger.Event{
			ID: ledger.SinceID(ledger.IDTime(last[port]).Add(time.Millisecond)), Type: ledger.EventReleased, Port: port,
			Released: &ledger.Released{Reason: "end of the original records"},
			Imported: &ledger.ImportSource{File: "test", Line: port},
		})
	}
	slices.SortFunc(out, func(a, b ledger.Event) int { return a.ID.Compare(b.ID) })
	return out
}

func TestReadOriginalNeedsFiles(t *testing.T) {
	is := is.New(t)
	_, err := commands.ReadOriginal(t.TempDir())
	is.Equal(ledger.ErrorCode(err), ledger.ENOTFOUND) // an empty folder is not an old root
}

// TestImportEndsOldHoldsBeforeTheLedgersOwn imports files whose last moment
// (the registry's modification time) lies after the ledger's own first
// allocation of a port that the old registry still lists: the old hold ends
// just before the ledger's own, and the import is taken.
func TestImportEndsOldHoldsBeforeTheLedgersOwn(t *testing.T) {
	is := is.New(t)
	ctx := context.Background()
	clock := ledgertest.NewClock(t0, 0)
	l, _ := mustOpenAudit(t, clock, 3)
	is.NoErr(l.SetRange(ctx, ledger.DefaultRange))
	native, err := l.Allocate(ctx, ledger.AllocateRequest{ServiceName: "native", Port: 8000})
	is.NoErr(err)

	root := writeOriginal(t)
	reg := ledger.Layout{Dir: root}.Registry()
	is.NoErr(os.Chtimes(reg, t0.Add(time.Hour), t0.Add(time.Hour))) // the old tool ran on after the ledger began
	clock.Set(t0.Add(2 * time.Hour))
	orig, err := commands.ReadOriginal(root)
	is.NoErr(err)
	res, err := l.Import(ctx, orig.Events)
	is.NoErr(err)                                               // taken, not refused
	is.Equal(res.Imported, len(orig.Events))                    // whole
	is.Equal(l.Registry().Allocs[8000].EventID, native.EventID) // the ledger's own holder stays
	ans, err := l.Who(ctx, 8000, ledger.UntilID(t0.Add(-time.Millisecond)))
	is.NoErr(err)
	is.Equal(ans.Holder, nil)                                            // the old hold ended
	is.Equal(ans.Previous.Allocation.ServiceName, "grace_backend")       // the old holder's
	is.Equal(ans.Previous.Release.Reason, "end of the original records") // saying why
	is.Equal(ans.Previous.Release.At, t0.Add(-time.Millisecond))         // just before the ledger's own

	again, err := commands.ReadOriginal(root)
	is.NoErr(err)
	res, err = l.Import(ctx, again.Events)
	is.NoErr(err)
	is.Equal(res.Imported, 0) // the same files again: nothing twice
}
