package ledger_test

import (
	"bytes"
	"errors"
	"github.com/portledger/portledger/internal/ledgertest"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/matryer/is"
	"github.com/oklog/ulid/v2"
	"github.com/portledger/portledger/internal/ledgerfile"
	"github.com/portledger/portledger/ledger"
	bolt "go.etcd.io/bbolt"
)

// TestPortIndexTail runs a random mix of appends of every size, imports
// into the past, failed appends and reopens against a small tail, and after
// each step compares both port scans with a filter over the whole log.
func TestPortIndexTail(t *testing.T) {
	is := is.New(t)
	const tail, block = 5, 3
	path := filepath.Join(t.TempDir(), "ledger.db")
	clock := ledgertest.NewClock(time.Date(2025, 11, 15, 14, 30, 0, 0, time.UTC), 0)
	opts := ledger.Options{Now: clock.Now, PortIndexTail: tail, PortIndexBlock: block}
	l, err := ledger.Open(path, opts)
	is.NoErr(err) // open
	defer func() { _ = l.Close() }()

	rng := rand.New(rand.NewPCG(1, 2))
	ports := []int{1, 255, 256, 8000, 8001, 8002, 65535}
	event := func() ledger.Event {
		if rng.IntN(10) == 0 {
			return sampleEvents()[len(sampleEvents())-1] // range_changed: no port
		}
		return stats(ports[rng.IntN(len(ports))], rng.Int64N(1000))
	}
	failing := func(uint64, []ledger.Event) ([]byte, error) { return nil, errors.New("disk full") }
	start := clock.Now()

	for step := range 300 {
		clock.Add(time.Duration(1+rng.IntN(3000)) * time.Millisecond)
		switch op := rng.IntN(20); {
		case op < 14:
			batch := make([]ledger.Event, 1+rng.IntN(2*tail))
			for i := range batch {
				batch[i] = event()
			}
			mustAppend(t, l, batch...)
		case op < 16:
			// An import lands between events already indexed.
			span := clock.Now().Sub(start).Milliseconds()
			e := event()
			e.ID = ulid.MustNew(uint64(start.UnixMilli()+rng.Int64N(span+1)), rand.NewChaCha8([32]byte{byte(step)}))
			is.NoErr(l.Insert([]ledger.Event{e})) // insert into the past
		case op < 18:
			_, err := l.Append([]ledger.Event{event(), event(), event()}, failing)
			is.True(err != nil) // the failed append writes nothing
		default:
			is.NoErr(l.Close()) // close
			l, err = ledger.Open(path, opts)
			is.NoErr(err) // reopen
		}
		checkPortScans(t, l, ports, rng)
	}
	is.NoErr(l.Check()) // the file is consistent
	is.NoErr(l.Close())

	// Each event with a port is indexed once: in by_port or in the tail
	// (the events after the index mark), which never reaches its size.
	all := map[ulid.ULID]int{}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	is.NoErr(err) // open the file with bbolt
	defer db.Close()
	is.NoErr(db.View(func(tx *bolt.Tx) error {
		is.True(tx.Bucket([]byte("port_tail")) == nil) // a new file has no tail bucket
		mark := tx.Bucket([]byte("meta")).Get([]byte("port_index_mark"))
		is.Equal(len(mark), 16) // the index mark
		events, inTail := 0, 0
		err := ledgerfile.Events{Tx: tx}.ForEach(func(k, v []byte) error {
			e, err := ledger.DecodeEvent(ulid.ULID(k), v)
			if err == nil && e.Port > 0 {
				events++
				if bytes.Compare(k, mark) > 0 {
					all[e.ID]++
					inTail++
				}
			}
			return err
		})
		is.NoErr(err) // decode every event
		var prev []byte
		err = tx.Bucket([]byte("by_port")).ForEach(func(k, v []byte) error {
			ids := [][]byte{k[2:]}
			if len(v) > 0 {
				is.Equal(v[0], byte(0xB1))     // a block
				is.Equal((len(v)-1)%16, 0)     // of whole IDs
				is.True((len(v)-1)/16 < block) // no bigger than its size
				for i := 1; i < len(v); i += 16 {
					ids = append(ids, v[i:i+16])
				}
			}
			for _, id := range ids {
				if prev != nil && bytes.Equal(prev[:2], k[:2]) {
					is.True(bytes.Compare(prev[2:], id) < 0) // a port's IDs in order across its blocks
				}
				prev = append(append([]byte(nil), k[:2]...), id...)
				is.True(bytes.Compare(id, mark) <= 0) // by_port ends at the mark
				all[ulid.ULID(id)]++
			}
			return nil
		})
		is.NoErr(err)              // walk by_port
		is.True(inTail < tail)     // the tail was merged each time it filled
		is.Equal(len(all), events) // every event with a port is indexed
		for id, n := range all {
			if n != 1 {
				t.Errorf("event %s is indexed %d times", id, n)
			}
		}
		return nil
	}))
}

// checkPortScans compares ScanPort over the whole log and over a random
// window, and ScanPortBack from a random point, with a filter over Scan.
func checkPortScans(t *testing.T, l *ledger.Log, ports []int, rng *rand.Rand) {
	t.Helper()
	is := is.NewRelaxed(t)
	zero := ulid.ULID{}
	every := scanAll(t, l, zero, zero)
	for _, port := range ports {
		var want []ledger.Event
		for _, e := range every {
			if e.Port == port {
				want = append(want, e)
			}
		}
		is.Equal(scanPort(t, l, port, zero, zero), want) // the whole history
		if len(want) == 0 {
			continue
		}
		i := rng.IntN(len(want))
		j := i + rng.IntN(len(want)-i)
		is.Equal(scanPort(t, l, port, want[i].ID, want[j].ID), want[i:j+1]) // a window

		limit := 1 + rng.IntN(len(want))
		var back []ledger.Event
		err := l.ScanPortBack(port, want[j].ID, func(e ledger.Event) (bool, error) {
			back = append(back, e)
			return len(back) < limit, nil
		})
		is.NoErr(err) // scan back
		wantBack := slices.Clone(want[max(0, j+1-limit) : j+1])
		slices.Reverse(wantBack)
		is.Equal(back, wantBack) // newest first from the point, stopping when told
	}
}

// TestFileWithoutPortTail opens a file written before the index tail
// existed, whose whole index is in by_port: read-only it reads as it is,
// and opened for writing it gains the index mark and goes on.
func TestFileWithoutPortTail(t *testing.T) {
	is := is.New(t)
	path := filepath.Join(t.TempDir(), "ledger.db")
	l, err := ledger.Open(path, ledger.Options{PortIndexTail: 1})
	is.NoErr(err) // open
	old := mustAppend(t, l, stats(8000, 1), stats(8001, 2), stats(8000, 3))
	is.NoErr(l.Close())

	db, err := bolt.Open(path, 0o600, nil)
	is.NoErr(err) // open the file with bbolt
	is.NoErr(db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("meta")).Delete([]byte("port_index_mark"))
	})) // as an older file
	is.NoErr(db.Close())

	ro, err := ledger.Open(path, ledger.Options{ReadOnly: true})
	is.NoErr(err) // a read-only open does not need the tail
	zero := ulid.ULID{}
	is.Equal(scanPort(t, ro, 8000, zero, zero), []ledger.Event{old[0], old[2]}) // the history is all in by_port
	is.NoErr(ro.Close())

	l, err = ledger.Open(path, ledger.Options{})
	is.NoErr(err) // a writable open adds the mark
	defer l.Close()
	next := mustAppend(t, l, stats(8000, 4))
	is.Equal(scanPort(t, l, 8000, zero, zero), []ledger.Event{old[0], old[2], next[0]}) // old and new entries, in order
	is.NoErr(l.Check())                                                                 // consistent
}

// TestFileWithPortTailBucket opens a file written when the index's tail was
// a bucket of its own (port_tail: ID -> 2-byte port + the event without its
// chain link): read-only it reads the bucket as it is, and a writable open
// moves the bucket's entries into by_port, drops it, and sets the mark,
// with every port's history unchanged.
func TestFileWithPortTailBucket(t *testing.T) {
	is := is.New(t)
	path := filepath.Join(t.TempDir(), "ledger.db")
	l, err := ledger.Open(path, ledger.Options{PortIndexTail: 1, PortIndexBlock: 1}) // an entry per event, as then
	is.NoErr(err)                                                                    // open
	evs := mustAppend(t, l, stats(8000, 1), stats(8001, 2), stats(8000, 3), stats(8001, 4), stats(8000, 5))
	is.NoErr(l.Close())

	// Rewrite the file as that version left it: the last three events'
	// entries in port_tail, not in by_port, and no mark.
	db, err := bolt.Open(path, 0o600, nil)
	is.NoErr(err) // open the file with bbolt
	is.NoErr(db.Update(func(tx *bolt.Tx) error {
		tail, err := tx.CreateBucket([]byte("port_tail"))
		if err != nil {
			return err
		}
		for _, e := range evs[2:] {
			enc, err := ledger.AppendEncoded(nil, &e)
			if err != nil {
				return err
			}
			if err := tail.Put(e.ID[:], append([]byte{byte(e.Port >> 8), byte(e.Port)}, enc...)); err != nil {
				return err
			}
			key := ledgerfile.EntryKey(e.Port, e.ID)
			if err := tx.Bucket([]byte("by_port")).Delete(key); err != nil {
				return err
			}
		}
		return tx.Bucket([]byte("meta")).Delete([]byte("port_index_mark"))
	})) // as that version wrote it
	is.NoErr(db.Close())

	zero := ulid.ULID{}
	want8000 := []ledger.Event{evs[0], evs[2], evs[4]}
	ro, err := ledger.Open(path, ledger.Options{ReadOnly: true})
	is.NoErr(err)                                         // read-only open
	is.Equal(scanPort(t, ro, 8000, zero, zero), want8000) // by_port and port_tail merged
	is.NoErr(ro.Close())

	l, err = ledger.Open(path, ledger.Options{})
	is.NoErr(err) // a writable open upgrades the index
	defer l.Close()
	is.Equal(scanPort(t, l, 8000, zero, zero), want8000)                       // the same history
	is.Equal(scanPort(t, l, 8001, zero, zero), []ledger.Event{evs[1], evs[3]}) // on every port
	next := mustAppend(t, l, stats(8000, 6))
	is.Equal(scanPort(t, l, 8000, zero, zero), append(want8000, next[0])) // and goes on
	is.NoErr(l.Check())                                                   // consistent
}

func TestDamagedPortTailEntry(t *testing.T) {
	is := is.New(t)
	path := filepath.Join(t.TempDir(), "ledger.db")
	l, err := ledger.Open(path, ledger.Options{PortIndexTail: 4})
	is.NoErr(err) // open
	evs := mustAppend(t, l, stats(8000, 1), stats(8001, 2))
	is.NoErr(l.Close())

	db, err := bolt.Open(path, 0o600, nil)
	is.NoErr(err) // open the file with bbolt
	is.NoErr(db.Update(func(tx *bolt.Tx) error {
		return ledgerfile.Events{Tx: tx}.Put(evs[1].ID[:], []byte{0x1f}) // too short to name a port
	})) // damage an event of the index's tail
	is.NoErr(db.Close())

	l, err = ledger.Open(path, ledger.Options{PortIndexTail: 4})
	is.NoErr(err) // open: the damage is for the chain check and verify to name
	defer l.Close()
	err = l.ScanPort(8000, ulid.ULID{}, ulid.ULID{}, func(ledger.Event) error { return nil })
	is.True(errors.Is(err, ledger.ErrCorrupt)) // reading the index says the file is damaged
	_, err = l.Append([]ledger.Event{stats(8002, 3), stats(8003, 4), stats(8004, 5)}, nil)
	is.True(errors.Is(err, ledger.ErrCorrupt)) // so does the merge, which writes nothing
	n, err := l.Count()
	is.NoErr(err)          // count
	is.Equal(n, uint64(2)) // the failed append added nothing
}

// TestPortIndexOfEarlierFiles: a file whose by_port holds the entries of
// earlier versions (a key per event with no value, or with a copy of the
// event) goes on with blocks: appends fill new blocks after them, an import
// into the past lands among them, and every port scan stays equal to a
// filter over the whole log.
func TestPortIndexOfEarlierFiles(t *testing.T) {
	is := is.New(t)
	path := filepath.Join(t.TempDir(), "ledger.db")
	clock := ledgertest.NewClock(time.Date(2025, 11, 15, 14, 30, 0, 0, time.UTC), 0)
	l, err := ledger.Open(path, ledger.Options{Now: clock.Now, PortIndexTail: 1, PortIndexBlock: 1})
	is.NoErr(err) // open
	ports := []int{8000, 8001, 8002}
	start := clock.Now()
	var old []ledger.Event
	for i := range 30 {
		clock.Add(time.Second)
		old = append(old, mustAppend(t, l, stats(ports[i%len(ports)], int64(i)))...)
	}
	is.NoErr(l.Close())

	// Rewrite each entry as an earlier version did: an ID alone, or, for
	// every third event, with a copy of the event.
	db, err := bolt.Open(path, 0o600, nil)
	is.NoErr(err) // open the file with bbolt
	is.NoErr(db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("by_port"))
		for i, e := range old {
			key := ledgerfile.EntryKey(e.Port, e.ID)
			var v []byte
			if i%3 == 0 {
				if v, err = ledger.AppendEncoded(nil, &e); err != nil {
					return err
				}
			}
			if err := b.Put(key, v); err != nil {
				return err
			}
		}
		return nil
	})) // as earlier versions wrote it
	is.NoErr(db.Close())

	opts := ledger.Options{Now: clock.Now, PortIndexTail: 4, PortIndexBlock: 4}
	l, err = ledger.Open(path, opts)
	is.NoErr(err) // open with blocks
	defer func() { _ = l.Close() }()
	rng := rand.New(rand.NewPCG(3, 4))
	checkPortScans(t, l, ports, rng) // the earlier entries read as they are
	for step := range 60 {
		clock.Add(time.Second)
		if step%5 == 4 {
			// An import into the past, among the earlier entries.
			span := clock.Now().Sub(start).Milliseconds()
			e := stats(ports[rng.IntN(len(ports))], int64(1000+step))
			e.ID = ulid.MustNew(uint64(start.UnixMilli()+rng.Int64N(span)), rand.NewChaCha8([32]byte{byte(step), 1}))
			is.NoErr(l.Insert([]ledger.Event{e})) // insert into the past
		} else {
			mustAppend(t, l, stats(ports[rng.IntN(len(ports))], int64(100+step)))
		}
		checkPortScans(t, l, ports, rng)
	}
	is.NoErr(l.Check()) // consistent
}
