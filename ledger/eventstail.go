package ledger

import (
	"bytes"
	"fmt"

	"github.com/oklog/ulid/v2"
	bolt "go.etcd.io/bbolt"
)

// The events' tail.
//
// A commit appends to the end of the events B+tree and rewrites the path
// from its root to the last leaf. A year's log of 10M events is a tree four
// levels deep where a new log's is two, so every commit on it wrote two
// more pages, and a commit's fsync costs by the pages it writes. So the
// events after the index mark (porttail.go), at most a merge's worth, live
// in a small bucket of their own, events_tail, and the commit that merges
// the port index moves them into events, where they fill whole leaves at
// once. Every event is in exactly one of the two: events holds the IDs up
// to the mark, events_tail the IDs after it. Readers see the two as one
// ordered bucket through eventCursor and getEvent.
//
// A file written before the events' tail has none: a writable Open moves the
// events after its mark into a new events_tail, and a read-only one reads
// its events bucket alone.

// bucketEventsTail holds the events after the index mark: ULID -> encoded
// event, as events does.
var bucketEventsTail = []byte("events_tail")

// eventCursor walks the events of events and events_tail as one bucket.
// Every key of the tail is greater than every key of events, so the walk is
// events' cursor followed by the tail's.
type eventCursor struct {
	main, tail *bolt.Cursor // tail is nil for a file without events_tail
	inTail     bool         // the cursor is on (or past the end of) the tail
}

// eventsCursor returns a cursor over every event in tx.
func eventsCursor(tx *bolt.Tx) *eventCursor {
	c := &eventCursor{main: tx.Bucket(bucketEvents).Cursor()}
	if b := tx.Bucket(bucketEventsTail); b != nil {
		c.tail = b.Cursor()
	}
	return c
}

// First moves to the oldest event.
func (c *eventCursor) First() (k, v []byte) {
	if k, v = c.main.First(); k != nil || c.tail == nil {
		c.inTail = false
		return k, v
	}
	c.inTail = true
	return c.tail.First()
}

// Last moves to the newest event.
func (c *eventCursor) Last() (k, v []byte) {
	if c.tail != nil {
		if k, v = c.tail.Last(); k != nil {
			c.inTail = true
			return k, v
		}
	}
	c.inTail = false
	return c.main.Last()
}

// Seek moves to the first event with an ID at or after seek.
func (c *eventCursor) Seek(seek []byte) (k, v []byte) {
	if k, v = c.main.Seek(seek); k != nil || c.tail == nil {
		c.inTail = false
		return k, v
	}
	c.inTail = true
	return c.tail.Seek(seek)
}

// Next moves to the next event.
func (c *eventCursor) Next() (k, v []byte) {
	if c.inTail {
		return c.tail.Next()
	}
	if k, v = c.main.Next(); k != nil || c.tail == nil {
		return k, v
	}
	c.inTail = true
	return c.tail.First()
}

// Prev moves to the previous event.
func (c *eventCursor) Prev() (k, v []byte) {
	if !c.inTail {
		return c.main.Prev()
	}
	if k, v = c.tail.Prev(); k != nil {
		return k, v
	}
	c.inTail = false
	return c.main.Last()
}

// getEvent returns the encoded event with the given ID, or nil. It looks in
// events first: the port index's entries, which history pages look up one
// by one, all name events up to the mark.
func getEvent(tx *bolt.Tx, id []byte) []byte {
	if v := tx.Bucket(bucketEvents).Get(id); v != nil {
		return v
	}
	if b := tx.Bucket(bucketEventsTail); b != nil {
		return b.Get(id)
	}
	return nil
}

// eventsFor returns the bucket that holds the event with ID id: the tail
// for an ID after mark, when the file has one.
func eventsFor(tx *bolt.Tx, mark, id ulid.ULID) *bolt.Bucket {
	if id.Compare(mark) > 0 {
		if b := tx.Bucket(bucketEventsTail); b != nil {
			return b
		}
	}
	return tx.Bucket(bucketEvents)
}

// upgradeEventsTail gives a file written before the events' tail its
// events_tail bucket, moving the events after the index mark into it. It
// runs after upgradeIndex, so the file has a mark; a file with the bucket
// is left as it is.
func upgradeEventsTail(tx *bolt.Tx) error {
	if tx.Bucket(bucketEventsTail) != nil {
		return nil
	}
	tail, err := tx.CreateBucket(bucketEventsTail)
	if err != nil {
		return err
	}
	tail.FillPercent = 1.0
	mark, _ := indexMark(tx)
	events := tx.Bucket(bucketEvents)
	var moved [][]byte
	c := events.Cursor()
	for k, v := afterMark(c, mark); k != nil; k, v = c.Next() {
		if err := tail.Put(bytes.Clone(k), bytes.Clone(v)); err != nil {
			return err
		}
		moved = append(moved, bytes.Clone(k))
	}
	// Delete after the walk: deleting under a cursor skips keys.
	for _, k := range moved {
		if err := events.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// emptyTail empties events_tail, whose events the merge has copied into
// events, in the merge's transaction: the bucket goes, with its pages, and
// comes back empty.
func emptyTail(tx *bolt.Tx) error {
	if err := tx.DeleteBucket(bucketEventsTail); err != nil {
		return err
	}
	_, err := tx.CreateBucket(bucketEventsTail)
	return err
}

// checkEventsSplit reports an event on the wrong side of the index mark:
// readers take every key of events_tail to be after every key of events,
// so such a file would read out of order.
func checkEventsSplit(tx *bolt.Tx) error {
	tail := tx.Bucket(bucketEventsTail)
	if tail == nil {
		return nil // a file before the events' tail: all its events are in events
	}
	mark, _ := indexMark(tx)
	if k, _ := tx.Bucket(bucketEvents).Cursor().Last(); k != nil && bytes.Compare(k, mark[:]) > 0 {
		return fmt.Errorf("%w: event %s in events is after the index mark %s", ErrCorrupt, ulid.ULID(k), mark)
	}
	if k, _ := tail.Cursor().First(); k != nil && bytes.Compare(k, mark[:]) <= 0 {
		return fmt.Errorf("%w: event %s in events_tail is not after the index mark %s", ErrCorrupt, ulid.ULID(k), mark)
	}
	return nil
}
