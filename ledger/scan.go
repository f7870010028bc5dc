package ledger

import (
	"bytes"
	"fmt"
	"slices"

	"github.com/oklog/ulid/v2"
	bolt "go.etcd.io/bbolt"
)

// LastID returns the newest ID in the log (zero when empty).
func (l *Log) LastID() ulid.ULID {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.last
}

// Count returns the number of events in the log.
func (l *Log) Count() (uint64, error) {
	var n uint64
	err := l.db.View(func(tx *bolt.Tx) error {
		n = countOf(tx.Bucket(bucketMeta))
		return nil
	})
	return n, err
}

// Last returns the newest event; ok is false when the log is empty.
func (l *Log) Last() (e Event, ok bool, err error) {
	err = l.db.View(func(tx *bolt.Tx) error {
		k, v := eventsCursor(tx).Last()
		if k == nil {
			return nil
		}
		e, err = DecodeEvent(ulid.ULID(k), v)
		ok = err == nil
		return err
	})
	return e, ok, err
}

// Get returns the event with the given ID, or an ENOTFOUND error.
func (l *Log) Get(id ulid.ULID) (e Event, err error) {
	err = l.db.View(func(tx *bolt.Tx) error {
		v := getEvent(tx, id[:])
		if v == nil {
			return Errorf(ENOTFOUND, "no event %s", id)
		}
		e, err = DecodeEvent(id, v)
		return err
	})
	return e, err
}

// Scan calls fn for every event with after < ID <= until, oldest first. A
// zero after starts at the beginning; a zero until has no end. An error from
// fn stops the scan and is returned.
func (l *Log) Scan(after, until ulid.ULID, fn func(Event) error) error {
	return l.scan(after, until, nil, fn)
}

// ScanTypes calls fn for every event of one of the given types with after
// < ID <= until, oldest first, as Scan does. Events of other types are
// skipped by their type byte, without decoding them: a window's usage reads
// its allocations and releases alone, a third of a busy log's events.
func (l *Log) ScanTypes(after, until ulid.ULID, types []EventType, fn func(Event) error) error {
	var want [256]bool
	for _, t := range types {
		if code, ok := typeCodes[t]; ok {
			want[code] = true
		}
	}
	return l.scan(after, until, &want, func(e Event) error {
		if !slices.Contains(types, e.Type) {
			return nil
		}
		return fn(e)
	})
}

// scan is Scan, skipping the events whose type byte want does not hold
// (nil: none is skipped) before it decodes them.
func (l *Log) scan(after, until ulid.ULID, want *[256]bool, fn func(Event) error) error {
	return l.db.View(func(tx *bolt.Tx) error {
		c := eventsCursor(tx)
		var k, v []byte
		if after.IsZero() {
			k, v = c.First()
		} else {
			k, v = c.Seek(after[:])
			if k != nil && ulid.ULID(k) == after {
				k, v = c.Next()
			}
		}
		for ; k != nil; k, v = c.Next() {
			id := ulid.ULID(k)
			if !until.IsZero() && id.Compare(until) > 0 {
				return nil
			}
			if want != nil && len(v) >= 2 && v[0] == codecVersion && !want[v[1]] {
				continue
			}
			e, err := DecodeEvent(id, v)
			if err != nil {
				return err
			}
			if err := fn(e); err != nil {
				return err
			}
		}
		return nil
	})
}

// ScanPort calls fn for every event of one port with since <= ID <= until,
// oldest first, using the port index. Zero bounds are open.
//
// The index's tail is the newest events themselves (porttail.go); by_port
// holds the IDs alone (files written before held copies there too, which are read as
// they are), and each is looked up in the events bucket: a B+tree search per
// event, about 1 µs. A copy per event would double the file (about 25 of
// the 110 bytes an event takes) to make a port's whole history, which is
// read a page at a time, a few times faster.
func (l *Log) ScanPort(port int, since, until ulid.ULID, fn func(Event) error) error {
	if err := CheckPort(port); err != nil {
		return err
	}
	return l.db.View(func(tx *bolt.Tx) error {
		tail, err := portTail(tx, port, since, until)
		if err != nil {
			return err
		}
		visit := func(id ulid.ULID, v []byte) error {
			e, err := indexedEvent(tx, id, v)
			if err != nil {
				return err
			}
			return fn(e)
		}
		c := tx.Bucket(bucketByPort).Cursor()
		// The block before since's key may hold IDs at or after since.
		start := portKey(port, since)
		if k, _ := entryAtOrBefore(c, port, since); len(k) == 18 {
			start = bytes.Clone(k)
		}
		var ids []ulid.ULID
		for k, v := c.Seek(start); k != nil && len(k) >= 2 && entryPort(k) == port; k, v = c.Next() {
			var cp []byte
			ids, cp, err = entryIDs(ids[:0], k, v)
			if err != nil {
				return err
			}
			for _, id := range ids {
				if id.Compare(since) < 0 {
					continue
				}
				if !until.IsZero() && id.Compare(until) > 0 {
					break
				}
				for len(tail) > 0 && tail[0].id.Compare(id) < 0 {
					if err := visit(tail[0].id, tail[0].v); err != nil {
						return err
					}
					tail = tail[1:]
				}
				if err := visit(id, cp); err != nil {
					return err
				}
			}
			if !until.IsZero() && len(ids) > 0 && ids[len(ids)-1].Compare(until) > 0 {
				break
			}
		}
		for _, t := range tail {
			if err := visit(t.id, t.v); err != nil {
				return err
			}
		}
		return nil
	})
}

// indexedEvent decodes the event of a port index entry, looking it up in
// the events when the entry holds no copy.
func indexedEvent(tx *bolt.Tx, id ulid.ULID, v []byte) (Event, error) {
	if len(v) == 0 {
		if v = getEvent(tx, id[:]); v == nil {
			return Event{}, fmt.Errorf("port index names missing event %s: %w", id, ErrCorrupt)
		}
	}
	return DecodeEvent(id, v)
}

// Snapshot returns the newest snapshot taken at or before the point at (zero
// at: the newest of all), with the ID of the last event it covers. ok is
// false when there is none.
func (l *Log) Snapshot(at ulid.ULID) (id ulid.ULID, data []byte, ok bool, err error) {
	err = l.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketSnapshots).Cursor()
		var k, v []byte
		if at.IsZero() {
			k, v = c.Last()
		} else {
			k, v = c.Seek(at[:])
			if k == nil || ulid.ULID(k).Compare(at) > 0 {
				k, v = c.Prev()
			}
		}
		if k == nil {
			return nil
		}
		v, _, _ = splitSnapshot(v)
		id, data, ok = ulid.ULID(k), append([]byte(nil), v...), true
		return nil
	})
	return id, data, ok, err
}

// ScanSnapshots calls fn with every snapshot, oldest first: the ID of the
// last event it covers and its data (valid only during the call).
func (l *Log) ScanSnapshots(fn func(id ulid.ULID, data []byte) error) error {
	return l.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketSnapshots).ForEach(func(k, v []byte) error {
			if len(k) != len(ulid.ULID{}) {
				return fmt.Errorf("snapshot key %x: %w", k, ErrCorrupt)
			}
			data, _, _ := splitSnapshot(v)
			return fn(ulid.ULID(k), data)
		})
	})
}
