package ledger_test

import (
	"errors"
	"fmt"
	"github.com/portledger/portledger/internal/ledgertest"
	"path/filepath"
	"testing"
	"time"

	"github.com/matryer/is"
	"github.com/oklog/ulid/v2"
	"github.com/portledger/portledger/internal/ledgerfile"
	"github.com/portledger/portledger/ledger"
	bolt "go.etcd.io/bbolt"
)

// mustAppend appends evs without a snapshot and returns them with IDs.
func mustAppend(tb testing.TB, l *ledger.Log, evs ...ledger.Event) []ledger.Event {
	tb.Helper()
	out, err := l.Append(evs, nil)
	if err != nil {
		tb.Fatalf("append: %v", err)
	}
	return out
}

// stats returns a stats_reported event of port with n requests.
func stats(port int, n int64) ledger.Event {
	return ledger.Event{Type: ledger.EventStatsReported, Port: port, StatsReported: &ledger.StatsReported{RequestCount: n}}
}

// scanAll returns every event with after < ID <= until.
func scanAll(tb testing.TB, l *ledger.Log, after, until ulid.ULID) []ledger.Event {
	tb.Helper()
	var out []ledger.Event
	if err := l.Scan(after, until, func(e ledger.Event) error {
		out = append(out, e)
		return nil
	}); err != nil {
		tb.Fatalf("scan: %v", err)
	}
	return out
}

// scanPort returns the events of port with since <= ID <= until.
func scanPort(tb testing.TB, l *ledger.Log, port int, since, until ulid.ULID) []ledger.Event {
	tb.Helper()
	var out []ledger.Event
	if err := l.ScanPort(port, since, until, func(e ledger.Event) error {
		out = append(out, e)
		return nil
	}); err != nil {
		tb.Fatalf("scan port %d: %v", port, err)
	}
	return out
}

// ids returns the IDs of evs.
func ids(evs []ledger.Event) []ulid.ULID {
	out := make([]ulid.ULID, len(evs))
	for i, e := range evs {
		out[i] = e.ID
	}
	return out
}

// strictlyIncreasing reports whether every ID is greater than the one before.
func strictlyIncreasing(evs []ledger.Event) bool {
	for i := 1; i < len(evs); i++ {
		if evs[i].ID.Compare(evs[i-1].ID) <= 0 {
			return false
		}
	}
	return true
}

func TestAppendIDsIncreaseWhenTheClockStepsBack(t *testing.T) {
	is := is.New(t)
	clock := ledgertest.NewClock(time.Date(2025, 11, 15, 14, 30, 0, 0, time.UTC), 0)
	l := ledgertest.MustOpenLog(t, ledger.Options{Now: clock.Now})
	start := clock.Now()

	var all []ledger.Event
	all = append(all, mustAppend(t, l, stats(8000, 1))...)
	clock.Add(-time.Hour)
	all = append(all, mustAppend(t, l, stats(8000, 2))...)
	all = append(all, mustAppend(t, l, stats(8001, 3), stats(8002, 4), stats(8000, 5))...)
	clock.Add(2 * time.Hour)
	all = append(all, mustAppend(t, l, stats(8000, 6))...)

	is.True(strictlyIncreasing(all)) // IDs strictly increase across the step back
	for i, e := range all {
		is.Equal(e.At, ledger.IDTime(e.ID)) // At is the ID's time
		if i < 5 {
			// While the clock is behind, events keep the newest ID's millisecond.
			is.Equal(e.At, start) // a stepped-back event is not dated in the past
		}
	}
	is.Equal(all[5].At, start.Add(time.Hour))                        // the clock is followed again once ahead
	is.Equal(ids(scanAll(t, l, ulid.ULID{}, ulid.ULID{})), ids(all)) // stored in the same order
}

func TestAppendIDsIncreaseWithinOneMillisecond(t *testing.T) {
	is := is.New(t)
	clock := ledgertest.NewClock(time.Date(2025, 11, 15, 14, 30, 0, 0, time.UTC), 0)
	l := ledgertest.MustOpenLog(t, ledger.Options{Now: clock.Now})
	var all []ledger.Event
	for i := range 50 {
		all = append(all, mustAppend(t, l, stats(8000+i%3, int64(i)))...)
	}
	batch := make([]ledger.Event, 200)
	for i := range batch {
		batch[i] = stats(8000, int64(i))
	}
	all = append(all, mustAppend(t, l, batch...)...)
	is.True(strictlyIncreasing(all)) // IDs strictly increase within one millisecond
	for _, e := range all {
		is.Equal(e.At, clock.Now()) // every event is in the clock's millisecond
	}
}

// ffReader reads as an endless run of 0xFF bytes.
type ffReader struct{}

func (ffReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 0xFF
	}
	return len(p), nil
}

func TestAppendMovesToTheNextMillisecondWhenTheRandomPartIsFull(t *testing.T) {
	is := is.New(t)
	clock := ledgertest.NewClock(time.Date(2025, 11, 15, 14, 30, 0, 0, time.UTC), 0)
	l := ledgertest.MustOpenLog(t, ledger.Options{Now: clock.Now, Entropy: ffReader{}})
	evs := mustAppend(t, l, stats(8000, 1), stats(8000, 2))
	is.True(strictlyIncreasing(evs))                       // the second ID is still greater
	is.Equal(evs[1].At, clock.Now().Add(time.Millisecond)) // it took the next millisecond
}

func TestAppendEmptyBatchWritesNothing(t *testing.T) {
	is := is.New(t)
	l := ledgertest.MustOpenLog(t, ledger.Options{})
	evs, err := l.Append(nil, func(uint64, []ledger.Event) ([]byte, error) {
		t.Error("snapshot func called for an empty batch")
		return nil, nil
	})
	is.NoErr(err)         // an empty batch is fine
	is.Equal(len(evs), 0) // and returns nothing
	n, err := l.Count()
	is.NoErr(err)          // count
	is.Equal(n, uint64(0)) // nothing was written
}

func TestCountLastIDAndLast(t *testing.T) {
	is := is.New(t)
	l := ledgertest.MustOpenLog(t, ledger.Options{})

	n, err := l.Count()
	is.NoErr(err)                     // count of an empty log
	is.Equal(n, uint64(0))            // an empty log has no events
	is.Equal(l.LastID(), ulid.ULID{}) // and no last ID
	_, ok, err := l.Last()
	is.NoErr(err) // last of an empty log
	is.True(!ok)  // an empty log has no last event

	first := mustAppend(t, l, sampleEvents()...)
	second := mustAppend(t, l, stats(8050, 7), stats(8051, 8))

	n, err = l.Count()
	is.NoErr(err)                               // count
	is.Equal(n, uint64(len(first)+len(second))) // every event is counted
	is.Equal(l.LastID(), second[1].ID)          // LastID is the newest ID
	last, ok, err := l.Last()
	is.NoErr(err)             // last
	is.True(ok)               // there is a last event
	is.Equal(last, second[1]) // Last is the newest event, decoded
	got, err := l.Get(first[2].ID)
	is.NoErr(err)           // get by ID
	is.Equal(got, first[2]) // Get returns the stored event
	_, err = l.Get(ulid.Make())
	is.Equal(ledger.ErrorCode(err), ledger.ENOTFOUND) // an unknown ID is not found
}

func TestAppendStoresEveryTypeAsGiven(t *testing.T) {
	is := is.New(t)
	l := ledgertest.MustOpenLog(t, ledger.Options{})
	want := mustAppend(t, l, append(sampleEvents(), withImported(sampleEvents())...)...)
	is.Equal(scanAll(t, l, ulid.ULID{}, ulid.ULID{}), want) // the log gives back what was appended
}

func TestScanBounds(t *testing.T) {
	clock := ledgertest.NewClock(time.Date(2025, 11, 15, 14, 30, 0, 0, time.UTC), 0)
	l := ledgertest.MustOpenLog(t, ledger.Options{Now: clock.Now})
	var evs []ledger.Event
	for i := range 10 {
		evs = append(evs, mustAppend(t, l, stats(8000+i%2, int64(i)))...)
		clock.Add(time.Second)
	}
	zero := ulid.ULID{}
	tests := []struct {
		name         string
		after, until ulid.ULID
		want         []ledger.Event
	}{
		{"everything", zero, zero, evs},
		{"after is exclusive", evs[3].ID, zero, evs[4:]},
		{"until is inclusive", zero, evs[6].ID, evs[:7]},
		{"both", evs[2].ID, evs[5].ID, evs[3:6]},
		{"after the last", evs[9].ID, zero, nil},
		{"until before the first", zero, ledger.SinceID(evs[0].At.Add(-time.Millisecond)), nil},
		{"after between IDs", ledger.UntilID(evs[4].At), zero, evs[5:]},
		{"until a millisecond", zero, ledger.UntilID(evs[4].At), evs[:5]},
		{"empty window", evs[5].ID, evs[5].ID, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			is.Equal(ids(scanAll(t, l, tt.after, tt.until)), ids(tt.want)) // the events in the window
		})
	}
}

func TestScanStopsOnTheCallbackError(t *testing.T) {
	is := is.New(t)
	l := ledgertest.MustOpenLog(t, ledger.Options{})
	mustAppend(t, l, stats(8000, 1), stats(8000, 2), stats(8000, 3))
	stop := errors.New("stop")
	calls := 0
	err := l.Scan(ulid.ULID{}, ulid.ULID{}, func(ledger.Event) error {
		calls++
		return stop
	})
	is.True(errors.Is(err, stop)) // the callback's error is returned
	is.Equal(calls, 1)            // and the scan stops there
}

func TestScanPort(t *testing.T) {
	// All in by_port, some in the tail and some merged, all in the tail.
	for _, tail := range []int{1, 7, ledger.DefaultPortIndexTail} {
		t.Run(fmt.Sprintf("tail %d", tail), func(t *testing.T) { testScanPort(t, tail) })
	}
}

func testScanPort(t *testing.T, tail int) {
	clock := ledgertest.NewClock(time.Date(2025, 11, 15, 14, 30, 0, 0, time.UTC), 0)
	l := ledgertest.MustOpenLog(t, ledger.Options{Now: clock.Now, PortIndexTail: tail})
	byPort := map[int][]ledger.Event{}
	// Ports next to each other, and 255/256 whose index keys differ only in
	// the high byte, must not leak into each other.
	ports := []int{8000, 8001, 8002, 255, 256, 65535, 1}
	for i := range 40 {
		port := ports[i%len(ports)]
		e := mustAppend(t, l, stats(port, int64(i)))[0]
		byPort[port] = append(byPort[port], e)
		clock.Add(time.Second)
	}
	// range_changed has no port and is in no port's history.
	mustAppend(t, l, sampleEvents()[len(sampleEvents())-1])

	zero := ulid.ULID{}
	p := byPort[8001]
	tests := []struct {
		name         string
		port         int
		since, until ulid.ULID
		want         []ledger.Event
	}{
		{"whole history", 8001, zero, zero, p},
		{"low port", 1, zero, zero, byPort[1]},
		{"high byte only", 256, zero, zero, byPort[256]},
		{"last port", 65535, zero, zero, byPort[65535]},
		{"since is inclusive", 8001, p[2].ID, zero, p[2:]},
		{"until is inclusive", 8001, zero, p[3].ID, p[:4]},
		{"since and until", 8001, p[1].ID, p[4].ID, p[1:5]},
		{"since a millisecond", 8001, ledger.SinceID(p[2].At), zero, p[2:]},
		{"until a millisecond", 8001, zero, ledger.UntilID(p[2].At), p[:3]},
		{"unused port", 9000, zero, zero, nil},
		{"since after the last", 8001, ledger.SinceID(p[len(p)-1].At.Add(time.Millisecond)), zero, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			got := scanPort(t, l, tt.port, tt.since, tt.until)
			is.Equal(ids(got), ids(tt.want)) // that port's events in the window, oldest first
			for _, e := range got {
				is.Equal(e.Port, tt.port) // only that port
			}
			if len(tt.want) > 0 {
				is.Equal(got, tt.want) // events are decoded whole
			}
		})
	}

	t.Run("bad port", func(t *testing.T) {
		is := is.New(t)
		for _, port := range []int{0, -1, 65536} {
			err := l.ScanPort(port, zero, zero, func(ledger.Event) error { return nil })
			is.Equal(ledger.ErrorCode(err), ledger.EINVALID) // a port outside 1-65535 is invalid
		}
	})
}

func TestSnapshots(t *testing.T) {
	is := is.New(t)
	clock := ledgertest.NewClock(time.Date(2025, 11, 15, 14, 30, 0, 0, time.UTC), 0)
	l := ledgertest.MustOpenLog(t, ledger.Options{Now: clock.Now})

	_, _, ok, err := l.Snapshot(ulid.ULID{})
	is.NoErr(err) // snapshot of an empty log
	is.True(!ok)  // an empty log has none

	// A snapshot every third event, holding the count it was taken at.
	snap := func(count uint64, batch []ledger.Event) ([]byte, error) {
		if count%3 != 0 {
			return nil, nil
		}
		return []byte{byte(count)}, nil
	}
	var evs []ledger.Event
	for i := range 10 {
		out, err := l.Append([]ledger.Event{stats(8000, int64(i))}, snap)
		is.NoErr(err) // append with a snapshot func
		evs = append(evs, out...)
		clock.Add(time.Second)
	}
	// Snapshots were taken after events 3, 6 and 9 (indexes 2, 5, 8).
	zero := ulid.ULID{}
	tests := []struct {
		name   string
		at     ulid.ULID
		ok     bool
		wantID ulid.ULID
		count  byte
	}{
		{"newest", zero, true, evs[8].ID, 9},
		{"at a snapshot", evs[5].ID, true, evs[5].ID, 6},
		{"between snapshots", evs[7].ID, true, evs[5].ID, 6},
		{"just before a snapshot", evs[4].ID, true, evs[2].ID, 3},
		{"after the newest", evs[9].ID, true, evs[8].ID, 9},
		{"far future", ledger.UntilID(clock.Now().Add(time.Hour)), true, evs[8].ID, 9},
		{"before the first", evs[1].ID, false, zero, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			id, data, ok, err := l.Snapshot(tt.at)
			is.NoErr(err)       // snapshot
			is.Equal(ok, tt.ok) // whether there is one at or before the point
			if tt.ok {
				is.Equal(id, tt.wantID)          // the newest snapshot at or before the point
				is.Equal(data, []byte{tt.count}) // with the data stored for it
			}
		})
	}
}

func TestSnapshotFuncSeesTheBatch(t *testing.T) {
	is := is.New(t)
	l := ledgertest.MustOpenLog(t, ledger.Options{})
	mustAppend(t, l, stats(8000, 1))
	var gotCount uint64
	var gotBatch []ledger.Event
	evs, err := l.Append([]ledger.Event{stats(8000, 2), stats(8001, 3)}, func(count uint64, batch []ledger.Event) ([]byte, error) {
		gotCount, gotBatch = count, append([]ledger.Event(nil), batch...)
		return []byte("state"), nil
	})
	is.NoErr(err)                 // append
	is.Equal(gotCount, uint64(3)) // the count after the batch
	is.Equal(gotBatch, evs)       // the batch with its IDs set
	id, data, ok, err := l.Snapshot(ulid.ULID{})
	is.NoErr(err)                   // snapshot
	is.True(ok)                     // stored
	is.Equal(id, evs[1].ID)         // under the batch's last ID
	is.Equal(string(data), "state") // with the func's data
}

func TestFailedAppendWritesNothing(t *testing.T) {
	is := is.New(t)
	l := ledgertest.MustOpenLog(t, ledger.Options{})
	before := mustAppend(t, l, stats(8000, 1))

	failing := func(uint64, []ledger.Event) ([]byte, error) { return nil, errors.New("disk full") }
	batch := []ledger.Event{stats(8000, 2), stats(8001, 3)}
	_, err := l.Append(batch, failing)
	is.True(err != nil) // a failed snapshot fails the append

	// An event that does not encode fails the whole batch too.
	_, err = l.Append([]ledger.Event{stats(8002, 4), {Type: ledger.EventReleased, Port: 8002}}, nil)
	is.True(err != nil) // an event without its payload fails the append

	n, err := l.Count()
	is.NoErr(err)                                                       // count
	is.Equal(n, uint64(1))                                              // nothing of the failed batches is counted
	is.Equal(l.LastID(), before[0].ID)                                  // the last ID did not move
	is.Equal(ids(scanAll(t, l, ulid.ULID{}, ulid.ULID{})), ids(before)) // no event was written
	is.Equal(len(scanPort(t, l, 8001, ulid.ULID{}, ulid.ULID{})), 0)    // no index entry was written
	is.Equal(len(scanPort(t, l, 8002, ulid.ULID{}, ulid.ULID{})), 0)    // for either batch
	_, _, ok, err := l.Snapshot(ulid.ULID{})
	is.NoErr(err) // snapshot
	is.True(!ok)  // no snapshot was written

	after := mustAppend(t, l, stats(8001, 5))
	is.True(after[0].ID.Compare(before[0].ID) > 0) // the log goes on after a failure
}

func TestReopenKeepsEverything(t *testing.T) {
	is := is.New(t)
	path := filepath.Join(t.TempDir(), "data", "ledger.db")
	clock := ledgertest.NewClock(time.Date(2025, 11, 15, 14, 30, 0, 0, time.UTC), 0)

	l, err := ledger.Open(path, ledger.Options{Now: clock.Now})
	is.NoErr(err) // open a new log in a folder that does not exist yet
	first, err := l.Append(sampleEvents(), func(uint64, []ledger.Event) ([]byte, error) { return []byte("s1"), nil })
	is.NoErr(err)       // append
	is.NoErr(l.Close()) // close

	// The clock stepped back while the ledger was closed.
	clock.Add(-time.Hour)
	l = ledgertest.MustOpenLogAt(t, path, ledger.Options{Now: clock.Now})
	is.Equal(l.LastID(), first[len(first)-1].ID) // the last ID is read back
	n, err := l.Count()
	is.NoErr(err)                                                        // count after reopen
	is.Equal(n, uint64(len(first)))                                      // the count is kept
	is.Equal(scanAll(t, l, ulid.ULID{}, ulid.ULID{}), first)             // every event is kept
	is.Equal(scanPort(t, l, 8003, ulid.ULID{}, ulid.ULID{}), first[3:4]) // and the port index
	_, data, ok, err := l.Snapshot(ulid.ULID{})
	is.NoErr(err)                // snapshot after reopen
	is.True(ok)                  // the snapshot is kept
	is.Equal(string(data), "s1") // with its data

	second := mustAppend(t, l, stats(8000, 9))
	is.True(second[0].ID.Compare(first[len(first)-1].ID) > 0) // IDs keep increasing after reopen
}

func TestScanPortIndexWithoutCopies(t *testing.T) {
	is := is.New(t)
	path := filepath.Join(t.TempDir(), "ledger.db")
	l, err := ledger.Open(path, ledger.Options{PortIndexTail: 1}) // every entry in by_port
	is.NoErr(err)                                                 // open
	evs := mustAppend(t, l, stats(8000, 1), stats(8001, 2), stats(8000, 3))
	is.NoErr(l.Close())

	// Index entries without the event's copy are looked up in the events
	// bucket; an entry whose event is gone is corruption.
	db, err := bolt.Open(path, 0o600, nil)
	is.NoErr(err) // open the file with bbolt
	is.NoErr(db.Update(func(tx *bolt.Tx) error {
		idx := tx.Bucket([]byte("by_port"))
		for _, e := range evs {
			k := ledgerfile.EntryKey(e.Port, e.ID)
			if err := idx.Put(k, nil); err != nil {
				return err
			}
		}
		return nil
	})) // empty every index value
	is.NoErr(db.Close())

	l, err = ledger.Open(path, ledger.Options{})
	is.NoErr(err) // reopen
	got := scanPort(t, l, 8000, ulid.ULID{}, ulid.ULID{})
	is.Equal(got, []ledger.Event{evs[0], evs[2]}) // the events are found through their IDs
	is.NoErr(l.Close())

	db, err = bolt.Open(path, 0o600, nil)
	is.NoErr(err) // open the file with bbolt again
	is.NoErr(db.Update(func(tx *bolt.Tx) error {
		return ledgerfile.Events{Tx: tx}.Delete(evs[2].ID[:])
	})) // lose an event that the index names
	is.NoErr(db.Close())

	l, err = ledger.Open(path, ledger.Options{})
	is.NoErr(err) // reopen
	defer l.Close()
	err = l.ScanPort(8000, ulid.ULID{}, ulid.ULID{}, func(ledger.Event) error { return nil })
	is.True(errors.Is(err, ledger.ErrCorrupt)) // a dangling index entry is corruption
}

func TestScanTypesIsScanOfThoseTypes(t *testing.T) {
	is := is.New(t)
	l := ledgertest.MustOpenLog(t, ledger.Options{})
	var evs []ledger.Event
	for i := range 30 {
		port := 9000 + i%3
		switch i % 3 {
		case 0:
			evs = append(evs, ledger.Event{Type: ledger.EventAllocated, Port: port, Allocated: &ledger.Allocated{ServiceName: fmt.Sprintf("svc-%d", i), StartedBy: "t"}})
		case 1:
			evs = append(evs, stats(port, int64(i)))
		default:
			evs = append(evs, ledger.Event{Type: ledger.EventReleased, Port: port, Released: &ledger.Released{Reason: "done"}})
		}
	}
	all := mustAppend(t, l, evs...)
	types := []ledger.EventType{ledger.EventAllocated, ledger.EventReleased}
	for _, w := range []struct{ after, until ulid.ULID }{{}, {all[4].ID, all[20].ID}, {all[0].ID, ulid.ULID{}}} {
		var want, got []ulid.ULID
		for _, e := range scanAll(t, l, w.after, w.until) {
			if e.Type == ledger.EventAllocated || e.Type == ledger.EventReleased {
				want = append(want, e.ID)
			}
		}
		is.NoErr(l.ScanTypes(w.after, w.until, types, func(e ledger.Event) error {
			got = append(got, e.ID)
			return nil
		}))
		is.Equal(got, want)
	}
}
