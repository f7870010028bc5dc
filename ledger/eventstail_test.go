package ledger

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/matryer/is"
	"github.com/oklog/ulid/v2"
	bolt "go.etcd.io/bbolt"
)

// tailEvent returns an event of port (0: a range change, which has none).
func tailEvent(port int, n int64) Event {
	if port == 0 {
		return Event{Type: EventRangeChanged, RangeChanged: &RangeChanged{From: Range{Lo: 8000, Hi: 8100}, To: Range{Lo: 8000, Hi: 8099}}}
	}
	return Event{Type: EventStatsReported, Port: port, StatsReported: &StatsReported{RequestCount: n}}
}

// appendEach appends n events, each in an Append of its own, event i on
// port portOf(i), and returns them with their IDs.
func appendEach(t *testing.T, l *Log, n int, portOf func(i int) int) []Event {
	t.Helper()
	var all []Event
	for i := range n {
		out, err := l.Append([]Event{tailEvent(portOf(i), int64(i))}, nil)
		if err != nil {
			t.Fatalf("append: %v", err)
		}
		all = append(all, out...)
	}
	return all
}

// TestEventsTailHoldsTheEventsAfterTheMark runs random appends, imports
// into the past (before and after the mark) and reopens against a tail of
// 5 port events, and after every step checks the file against the IDs it
// was given: events holds the IDs up to the index mark and events_tail
// the ones after it, each once, and the two read as one bucket forwards,
// backwards, from any seek and by ID.
func TestEventsTailHoldsTheEventsAfterTheMark(t *testing.T) {
	is := is.New(t)
	path := filepath.Join(t.TempDir(), "ledger.db")
	now := time.Date(2025, 11, 15, 14, 30, 0, 0, time.UTC)
	start := now
	opts := Options{Now: func() time.Time { return now }, PortIndexTail: 5, PortIndexBlock: 3}
	l, err := Open(path, opts)
	is.NoErr(err) // open
	defer func() { _ = l.Close() }()

	rng := rand.New(rand.NewPCG(3, 4))
	ports := []int{0, 8000, 8001, 8002}
	var want []ulid.ULID // every ID given, in order
	moved := 0           // steps after which the tail had just been moved
	for step := range 400 {
		now = now.Add(time.Duration(1+rng.IntN(2000)) * time.Millisecond)
		switch op := rng.IntN(10); {
		case op < 7:
			batch := make([]Event, 1+rng.IntN(8))
			for i := range batch {
				batch[i] = tailEvent(ports[rng.IntN(len(ports))], int64(step))
			}
			out, err := l.Append(batch, nil)
			is.NoErr(err) // append
			for _, e := range out {
				want = append(want, e.ID)
			}
		case op < 9:
			e := tailEvent(ports[1+rng.IntN(len(ports)-1)], int64(step))
			span := now.Sub(start).Milliseconds()
			e.ID = ulid.MustNew(uint64(start.UnixMilli()+rng.Int64N(span+1)), rand.NewChaCha8([32]byte{byte(step), byte(step >> 8)}))
			is.NoErr(l.Insert([]Event{e})) // import into the past
			want = append(want, e.ID)
		default:
			is.NoErr(l.Close())
			l, err = Open(path, opts)
			is.NoErr(err) // reopen
		}
		slices.SortFunc(want, func(a, b ulid.ULID) int { return a.Compare(b) })
		if checkEventsTail(t, l, want, rng) == 0 {
			moved++
		}
	}
	is.True(moved > 20) // the tail was moved into events many times
	is.NoErr(l.Check()) // and the file is consistent
}

// checkEventsTail checks l's file against want, every ID it holds in
// order, and returns how many events are in its tail.
func checkEventsTail(t *testing.T, l *Log, want []ulid.ULID, rng *rand.Rand) (inTail int) {
	t.Helper()
	is := is.NewRelaxed(t)
	err := l.db.View(func(tx *bolt.Tx) error {
		mark, ok := indexMark(tx)
		is.True(ok) // the file has a mark
		var main, tail []ulid.ULID
		_ = tx.Bucket(bucketEvents).ForEach(func(k, _ []byte) error { main = append(main, ulid.ULID(k)); return nil })
		_ = tx.Bucket(bucketEventsTail).ForEach(func(k, _ []byte) error { tail = append(tail, ulid.ULID(k)); return nil })
		inTail = len(tail)
		for _, id := range main {
			is.True(id.Compare(mark) <= 0) // events ends at the mark
		}
		for _, id := range tail {
			is.True(id.Compare(mark) > 0) // the tail starts after it
		}
		is.Equal(append(main, tail...), want)                       // each event once, in one of the two
		is.Equal(countOf(tx.Bucket(bucketMeta)), uint64(len(want))) // and counted

		c := eventsCursor(tx)
		var fwd, back []ulid.ULID
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			fwd = append(fwd, ulid.ULID(k))
		}
		for k, _ := c.Last(); k != nil; k, _ = c.Prev() {
			back = append(back, ulid.ULID(k))
		}
		slices.Reverse(back)
		if len(want) == 0 {
			is.Equal(len(fwd)+len(back), 0) // an empty log reads empty
			return nil
		}
		is.Equal(fwd, want)  // forwards
		is.Equal(back, want) // backwards
		for range 20 {
			i := rng.IntN(len(want))
			is.True(getEvent(tx, want[i][:]) != nil) // found by ID
			seek := want[i]
			if rng.IntN(2) == 0 {
				seek[15]++ // between two IDs (or past the last)
			}
			j, _ := slices.BinarySearchFunc(want, seek, func(a, b ulid.ULID) int { return a.Compare(b) })
			k, _ := c.Seek(seek[:])
			if j == len(want) {
				is.True(k == nil) // a seek past the end finds nothing
				k, _ = c.Prev()
				is.Equal(k, want[j-1][:]) // and steps back to the newest
				continue
			}
			is.Equal(k, want[j][:]) // a seek finds the next ID
			if k, _ = c.Next(); j+1 < len(want) {
				is.Equal(k, want[j+1][:]) // and walks on from it
			}
			k, _ = c.Seek(seek[:])
			if k, _ = c.Prev(); j > 0 {
				is.Equal(k, want[j-1][:]) // or back
			} else {
				is.True(k == nil)
			}
		}
		return nil
	})
	is.NoErr(err)
	if len(want) > 0 {
		i := rng.IntN(len(want))
		got, err := l.LastAt(want[i])
		is.NoErr(err)
		is.Equal(got, want[i]) // the newest event at a point
	}
	return inTail
}

// TestFileWithoutEventsTail opens a file written before the events' tail,
// whose events after the mark are in the events bucket: read-only it reads
// as it is, and opened for writing it moves them into events_tail and goes
// on, every answer unchanged.
func TestFileWithoutEventsTail(t *testing.T) {
	is := is.New(t)
	path := filepath.Join(t.TempDir(), "ledger.db")
	opts := Options{PortIndexTail: 4}
	l, err := Open(path, opts)
	is.NoErr(err) // open
	all := appendEach(t, l, 6, func(i int) int { return 8000 + i%2 })
	is.NoErr(l.Close())

	// Write it back as the version before wrote it.
	db, err := bolt.Open(path, 0o600, nil)
	is.NoErr(err) // open the file with bbolt
	is.NoErr(db.Update(func(tx *bolt.Tx) error {
		events, tail := tx.Bucket(bucketEvents), tx.Bucket(bucketEventsTail)
		n := 0
		err := tail.ForEach(func(k, v []byte) error {
			n++
			return events.Put(bytes.Clone(k), bytes.Clone(v))
		})
		is.Equal(n, 2) // the two events after the mark
		if err != nil {
			return err
		}
		return tx.DeleteBucket(bucketEventsTail)
	})) // as the last version left it
	is.NoErr(db.Close())

	read := func(l *Log) (every, port []Event) {
		is.NoErr(l.Scan(ulid.Zero, ulid.Zero, func(e Event) error { every = append(every, e); return nil }))
		is.NoErr(l.ScanPort(8001, ulid.Zero, ulid.Zero, func(e Event) error { port = append(port, e); return nil }))
		return every, port
	}
	ro, err := Open(path, Options{ReadOnly: true})
	is.NoErr(err) // a read-only open
	every, port := read(ro)
	is.Equal(every, all)                            // reads every event
	is.Equal(port, []Event{all[1], all[3], all[5]}) // and the port's, the tail's among them
	is.NoErr(ro.db.View(func(tx *bolt.Tx) error {
		is.True(tx.Bucket(bucketEventsTail) == nil) // without writing
		return nil
	}))
	is.NoErr(ro.Close())

	l, err = Open(path, opts)
	is.NoErr(err) // a writable open
	defer l.Close()
	is.NoErr(l.db.View(func(tx *bolt.Tx) error {
		n := tx.Bucket(bucketEventsTail).Stats().KeyN
		is.Equal(n, 2) // moves the events after the mark into the tail
		return nil
	}))
	again, port2 := read(l)
	is.Equal(again, every) // the same answers
	is.Equal(port2, port)
	out, err := l.Append([]Event{tailEvent(8001, 7), tailEvent(8000, 8)}, nil)
	is.NoErr(err) // goes on: the tail reaches 4 and moves
	rng := rand.New(rand.NewPCG(5, 6))
	is.Equal(checkEventsTail(t, l, ids(append(all, out...)), rng), 0) // all in events now
	is.NoErr(l.Check())
}

func ids(evs []Event) []ulid.ULID {
	out := make([]ulid.ULID, len(evs))
	for i, e := range evs {
		out[i] = e.ID
	}
	return out
}

// TestReadAhead opens a log with ReadAhead, for reading and for writing, and
// reads what it reads without it; a path that is not there yet becomes a
// new log as without it.
func TestReadAhead(t *testing.T) {
	is := is.New(t)
	path := filepath.Join(t.TempDir(), "ledger.db")
	l, err := Open(path, Options{ReadAhead: true})
	is.NoErr(err) // a new log
	want := appendEach(t, l, 50, func(i int) int { return 8000 + i%3 })
	is.NoErr(l.Close())
	for _, opts := range []Options{{ReadAhead: true}, {ReadAhead: true, ReadOnly: true}} {
		l, err := Open(path, opts)
		is.NoErr(err) // opens
		var got []Event
		is.NoErr(l.Scan(ulid.Zero, ulid.Zero, func(e Event) error { got = append(got, e); return nil }))
		is.Equal(got, want) // and reads every event
		is.NoErr(l.Close())
	}
}

// TestCheckNamesAnEventOnTheWrongSideOfTheMark moves one event across the
// index mark with bbolt, each way, and Check names it as corruption.
func TestCheckNamesAnEventOnTheWrongSideOfTheMark(t *testing.T) {
	for _, into := range [][]byte{bucketEventsTail, bucketEvents} {
		t.Run(string(into), func(t *testing.T) {
			is := is.New(t)
			path := filepath.Join(t.TempDir(), "ledger.db")
			l, err := Open(path, Options{PortIndexTail: 4})
			is.NoErr(err)
			all := appendEach(t, l, 6, func(int) int { return 8000 })
			is.NoErr(l.Check()) // 4 events in events, 2 in the tail: consistent
			is.NoErr(l.Close())

			victim := all[1] // in events: moved into the tail
			from := bucketEvents
			if bytes.Equal(into, bucketEvents) {
				victim, from = all[5], bucketEventsTail // in the tail: moved into events
			}
			db, err := bolt.Open(path, 0o600, nil)
			is.NoErr(err)
			is.NoErr(db.Update(func(tx *bolt.Tx) error {
				v := bytes.Clone(tx.Bucket(from).Get(victim.ID[:]))
				if err := tx.Bucket(from).Delete(victim.ID[:]); err != nil {
					return err
				}
				return tx.Bucket(into).Put(victim.ID[:], v)
			})) // move it across the mark
			is.NoErr(db.Close())

			l, err = Open(path, Options{PortIndexTail: 4})
			is.NoErr(err)
			defer l.Close()
			err = l.Check()
			is.True(errors.Is(err, ErrCorrupt))                        // is corruption
			is.True(strings.Contains(err.Error(), victim.ID.String())) // naming the event
		})
	}
}
