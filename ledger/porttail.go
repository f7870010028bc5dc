package ledger

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"maps"
	"slices"

	"github.com/oklog/ulid/v2"
	bolt "go.etcd.io/bbolt"
)

// The port index's tail.
//
// by_port, keyed by port and then ID, makes a port's history one cursor
// walk; but a group of events on 16 ports would dirty 16 of its leaf pages
// and their branches in every commit. So a commit writes no index entry at
// all: the events after the index mark (meta keyIndexMark, the newest event
// whose entry is in by_port) are the index's tail, read straight from the
// events themselves (in events_tail, eventstail.go), where the port is the
// third field of each encoded event. The commit that brings the tail to
// Options.PortIndexTail events with a port moves them all into by_port at
// once, where they share each port's leaf pages, moves the events into the
// events bucket, and moves the mark. Readers merge both parts.
//
// Files written before the mark kept the tail in a bucket of its own,
// port_tail (ID -> 2-byte port + encoded event): a writable Open moves it
// into by_port and sets the mark; a read-only one reads it as it is.

// keyIndexMark is the meta key of the index mark: the ID of the newest event
// whose port index entry is in by_port (16 zero bytes: none).
var keyIndexMark = []byte("port_index_mark")

// indexMark returns the index mark, and false for a file written before it.
func indexMark(tx *bolt.Tx) (ulid.ULID, bool) {
	v := tx.Bucket(bucketMeta).Get(keyIndexMark)
	if len(v) != len(ulid.ULID{}) {
		return ulid.ULID{}, false
	}
	return ulid.ULID(v), true
}

// eventPort returns the port of an encoded event (codec.go: version, type,
// flags, then the port as a uvarint).
func eventPort(id, v []byte) (int, error) {
	if len(v) < 4 || v[0] != codecVersion {
		return 0, fmt.Errorf("%w: event %x is not an encoded event", ErrCorrupt, id)
	}
	port, n := binary.Uvarint(v[3:])
	if n <= 0 || port > MaxPort {
		return 0, fmt.Errorf("%w: event %x has no valid port", ErrCorrupt, id)
	}
	return int(port), nil
}

// afterMark positions c on the first event after mark.
func afterMark(c seekCursor, mark ulid.ULID) (k, v []byte) {
	k, v = c.Seek(mark[:])
	if k != nil && bytes.Equal(k, mark[:]) {
		k, v = c.Next()
	}
	return k, v
}

// readTail reads the index's tail, the events after the index mark, once:
// how many have a port, and the last ports of the services it allocated
// (services.go). An event it cannot read is not counted: Open must not fail
// on it, so that the daemon can start and `ledger verify` can name it;
// reading the index, and the merge, report it. A file written before the
// mark has no tail here (its services bucket is whole).
func readTail(tx *bolt.Tx) (n int, recent lastPorts) {
	recent = lastPorts{}
	mark, ok := indexMark(tx)
	if !ok {
		return 0, recent
	}
	c := eventsCursor(tx)
	for k, v := afterMark(c, mark); k != nil; k, v = c.Next() {
		if port, err := eventPort(k, v); err == nil && port > 0 {
			n++
			recent.noteEncoded(tx, k, v)
		}
	}
	return n, recent
}

// mergeTail writes the by_port entries of every event after the index mark
// into blocks of at most size IDs (portblocks.go), moves those events from
// events_tail to the end of events in the same pass (eventstail.go), and
// moves the mark to the newest of them, inside tx. Only a writable log
// merges, and its Open gave the file the events' tail.
func mergeTail(tx *bolt.Tx, size int) error {
	tail := tx.Bucket(bucketEventsTail)
	if tail == nil {
		return fmt.Errorf("%w: no bucket %q", ErrCorrupt, bucketEventsTail)
	}
	byPort := tx.Bucket(bucketByPort)
	byPort.FillPercent = 0.9
	events := tx.Bucket(bucketEvents)
	events.FillPercent = 1.0 // appended keys only ever grow: pack pages full
	mark, _ := indexMark(tx)
	newest := mark
	ports := map[int][]ulid.ULID{}
	c := tail.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		port, err := eventPort(k, v)
		if err != nil {
			return err
		}
		newest = ulid.ULID(k)
		if port > 0 {
			ports[port] = append(ports[port], newest)
		}
		// The tail's pages are freed below, in this transaction: copy.
		if err := events.Put(bytes.Clone(k), bytes.Clone(v)); err != nil {
			return fmt.Errorf("move event %s: %w", newest, err)
		}
	}
	for _, port := range slices.Sorted(maps.Keys(ports)) {
		if err := appendToPort(byPort, port, ports[port], size); err != nil {
			return err
		}
	}
	if err := emptyTail(tx); err != nil {
		return fmt.Errorf("the events' tail: %w", err)
	}
	return tx.Bucket(bucketMeta).Put(keyIndexMark, newest[:])
}

// seekCursor is a bbolt cursor or an eventCursor.
type seekCursor interface {
	Seek(seek []byte) (k, v []byte)
	Next() (k, v []byte)
}

// upgradeIndex gives a file written before the index mark its mark: the
// entries of its port_tail bucket move into by_port, the bucket goes, and
// the mark is set to the newest event, all of whose entries are then in
// by_port. It does nothing to a file that has a mark.
func upgradeIndex(tx *bolt.Tx) error {
	if _, ok := indexMark(tx); ok {
		return nil
	}
	if b := tx.Bucket(bucketPortTail); b != nil {
		byPort := tx.Bucket(bucketByPort)
		c := b.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			port, err := legacyTailPort(k, v)
			if err != nil {
				return err
			}
			if err := byPort.Put(portKey(port, ulid.ULID(k)), nil); err != nil {
				return err
			}
		}
		if err := tx.DeleteBucket(bucketPortTail); err != nil {
			return err
		}
	}
	var newest ulid.ULID
	if k, _ := eventsCursor(tx).Last(); k != nil {
		newest = ulid.ULID(k)
	}
	return tx.Bucket(bucketMeta).Put(keyIndexMark, newest[:])
}

// tailEntry is an entry of the port index's tail.
type tailEntry struct {
	id ulid.ULID
	v  []byte // the encoded event
}

// portTail returns the entries of one port in the index's tail with since
// <= ID <= until (zero bounds open), oldest first. The values point into
// tx's pages.
func portTail(tx *bolt.Tx, port int, since, until ulid.ULID) ([]tailEntry, error) {
	mark, ok := indexMark(tx)
	if !ok {
		return legacyPortTail(tx, port, since, until)
	}
	var out []tailEntry
	c := eventsCursor(tx)
	k, v := afterMark(c, mark)
	if since.Compare(mark) > 0 {
		k, v = c.Seek(since[:])
	}
	for ; k != nil; k, v = c.Next() {
		id := ulid.ULID(k)
		if !until.IsZero() && id.Compare(until) > 0 {
			break
		}
		p, err := eventPort(k, v)
		if err != nil {
			return nil, err
		}
		if p == port {
			out = append(out, tailEntry{id: id, v: v})
		}
	}
	return out, nil
}

// legacyPortTail is portTail for a file written before the index mark,
// opened read-only: its tail is the port_tail bucket.
func legacyPortTail(tx *bolt.Tx, port int, since, until ulid.ULID) ([]tailEntry, error) {
	b := tx.Bucket(bucketPortTail)
	if b == nil {
		return nil, nil // a file from before any tail: its whole index is in by_port
	}
	var out []tailEntry
	c := b.Cursor()
	for k, v := c.Seek(since[:]); k != nil; k, v = c.Next() {
		p, err := legacyTailPort(k, v)
		if err != nil {
			return nil, err
		}
		id := ulid.ULID(k)
		if !until.IsZero() && id.Compare(until) > 0 {
			break
		}
		if p == port {
			out = append(out, tailEntry{id: id, v: v[2:]})
		}
	}
	return out, nil
}

// legacyTailPort returns the port of a port_tail entry, whose key is an ID
// and whose value starts with the 2-byte port.
func legacyTailPort(k, v []byte) (int, error) {
	if len(k) != 16 || len(v) < 2 {
		return 0, fmt.Errorf("%w: port_tail entry %x", ErrCorrupt, k)
	}
	return int(binary.BigEndian.Uint16(v)), nil
}
