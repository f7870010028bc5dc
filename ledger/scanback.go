package ledger

import (
	"bytes"

	"github.com/oklog/ulid/v2"
	bolt "go.etcd.io/bbolt"
)

// ScanPortBack calls fn for every event of one port with ID <= until (zero:
// no bound), newest first, using the port index, until fn returns false or
// an error. It reads the events just before a moment without walking the
// port's whole history.
func (l *Log) ScanPortBack(port int, until ulid.ULID, fn func(Event) (bool, error)) error {
	if err := CheckPort(port); err != nil {
		return err
	}
	if until.IsZero() {
		until = maxID
	}
	return l.db.View(func(tx *bolt.Tx) error {
		tail, err := portTail(tx, port, ulid.Zero, until)
		if err != nil {
			return err
		}
		visit := func(id ulid.ULID, v []byte) (bool, error) {
			e, err := indexedEvent(tx, id, v)
			if err != nil {
				return false, err
			}
			return fn(e)
		}
		c := tx.Bucket(bucketByPort).Cursor()
		k, v := entryAtOrBefore(c, port, until)
		var ids []ulid.ULID
		for ; k != nil && len(k) >= 2 && entryPort(k) == port; k, v = c.Prev() {
			var cp []byte
			ids, cp, err = entryIDs(ids[:0], k, v)
			if err != nil {
				return err
			}
			for i := len(ids) - 1; i >= 0; i-- {
				id := ids[i]
				if id.Compare(until) > 0 {
					continue
				}
				for n := len(tail); n > 0 && tail[n-1].id.Compare(id) > 0; n = len(tail) {
					if more, err := visit(tail[n-1].id, tail[n-1].v); err != nil || !more {
						return err
					}
					tail = tail[:n-1]
				}
				if more, err := visit(id, cp); err != nil || !more {
					return err
				}
			}
		}
		for i := len(tail) - 1; i >= 0; i-- {
			if more, err := visit(tail[i].id, tail[i].v); err != nil || !more {
				return err
			}
		}
		return nil
	})
}

// LastAt returns the ID of the newest event at or before the point until
// (zero: the newest of all); the zero ULID when there is none, as for a
// moment before the first event.
func (l *Log) LastAt(until ulid.ULID) (ulid.ULID, error) {
	var id ulid.ULID
	err := l.db.View(func(tx *bolt.Tx) error {
		c := eventsCursor(tx)
		var k []byte
		if until.IsZero() {
			k, _ = c.Last()
		} else {
			k, _ = c.Seek(until[:])
			if k == nil || bytes.Compare(k, until[:]) > 0 {
				k, _ = c.Prev()
			}
		}
		if k != nil {
			id = ulid.ULID(k)
		}
		return nil
	})
	return id, err
}
