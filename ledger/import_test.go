package ledger_test

import (
	"github.com/portledger/portledger/internal/ledgertest"
	"testing"
	"time"

	"github.com/matryer/is"
	"github.com/oklog/ulid/v2"
	"github.com/portledger/portledger/ledger"
)

func TestInsertIntoThePast(t *testing.T) {
	is := is.New(t)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := ledgertest.MustOpenLog(t, ledger.Options{Now: func() time.Time { return now }})
	evs, err := l.Append([]ledger.Event{stats(8000, 1), stats(8000, 2)}, func(uint64, []ledger.Event) ([]byte, error) { return []byte("snap"), nil })
	is.NoErr(err)
	last := l.LastID()

	past := stats(8000, 3)
	past.ID = ledger.SinceID(now.Add(-time.Hour))
	past.Imported = &ledger.ImportSource{File: "allocations_20251231.jsonl", Line: 7}
	is.NoErr(l.Insert([]ledger.Event{past}))
	n, err := l.Count()
	is.NoErr(err)
	is.Equal(n, uint64(3))     // the count follows
	is.Equal(l.LastID(), last) // the head does not move
	_, _, ok, err := l.Snapshot(ulid.ULID{})
	is.NoErr(err)
	is.True(!ok) // the snapshot after the inserted event is gone

	var port []ledger.Event
	is.NoErr(l.ScanPort(8000, ulid.ULID{}, ulid.ULID{}, func(e ledger.Event) error { port = append(port, e); return nil }))
	is.Equal(len(port), 3)                       // indexed by port
	is.Equal(port[0].ID, past.ID)                // in time order, first
	is.Equal(port[0].Imported.Line, 7)           // with its source
	is.Equal(port[0].At, ledger.IDTime(past.ID)) // its time is its ID's

	is.Equal(ledger.ErrorCode(l.Insert([]ledger.Event{past})), ledger.ECONFLICT)   // an ID already there
	is.Equal(ledger.ErrorCode(l.Insert([]ledger.Event{evs[0]})), ledger.ECONFLICT) // an appended one too
	n, err = l.Count()
	is.NoErr(err)
	is.Equal(n, uint64(3)) // refused inserts write nothing

	var back []ulid.ULID
	is.NoErr(l.ScanPortBack(8000, evs[0].ID, func(e ledger.Event) (bool, error) { back = append(back, e.ID); return true, nil }))
	is.Equal(back, []ulid.ULID{evs[0].ID, past.ID}) // newest first, up to the point
	at, err := l.LastAt(ledger.UntilID(now.Add(-2 * time.Hour)))
	is.NoErr(err)
	is.True(at.IsZero()) // nothing before the first event
}
