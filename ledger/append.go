package ledger

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"maps"
	"time"

	"github.com/oklog/ulid/v2"
	bolt "go.etcd.io/bbolt"
)

// SnapshotFunc is called inside the write transaction of Append, after the
// batch has its IDs, with the number of events in the log after the batch.
// It returns the snapshot to store under the batch's last ID, or nil.
type SnapshotFunc func(count uint64, batch []Event) ([]byte, error)

// Append writes evs in one transaction, one fsync, and returns them with
// their IDs and times set. IDs are strictly increasing, even when the clock
// steps back: an ID's millisecond is max(now, newest ID's millisecond). The
// port index (see DefaultPortIndexTail) and the event count are written in
// the same transaction, and so is the snapshot that snap returns, if any.
// Nothing is written if any event fails to encode or the commit fails.
func (l *Log) Append(evs []Event, snap SnapshotFunc) ([]Event, error) {
	if len(evs) == 0 {
		return evs, nil
	}
	if l.db.IsReadOnly() {
		return evs, fmt.Errorf("append: %s was opened read-only (its file system is read-only)", l.path)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	last := l.last
	head := l.head
	tailN := l.tailN
	for i := range evs {
		if evs[i].Port > 0 {
			tailN++
		}
	}
	merge := tailN >= l.tailMax
	named := lastPorts{} // the batch's services' last ports
	var buf []byte
	err := l.db.Update(func(tx *bolt.Tx) error {
		// New IDs are after the index mark: they go to the events' tail
		// (eventstail.go), a tree two levels deep however long the log.
		events := tx.Bucket(bucketEventsTail) // a writable Open made it
		events.FillPercent = 1.0              // keys only ever grow: pack pages full
		meta := tx.Bucket(bucketMeta)
		services := tx.Bucket(bucketServices)
		services.FillPercent = servicesFill
		now := l.now()
		for i := range evs {
			id, err := l.nextID(last, now)
			if err != nil {
				return err
			}
			last = id
			evs[i].ID = id
			evs[i].At = IDTime(id)
			buf, err = AppendEncoded(buf[:0], &evs[i])
			if err != nil {
				return err
			}
			var v []byte
			if l.noChain {
				v = bytes.Clone(buf)
			} else {
				v, head = chainEvent(head, id, buf)
			}
			if err := events.Put(id[:], v); err != nil {
				return err
			}
			named.note(&evs[i])
		}
		if merge {
			if err := mergeTail(tx, l.blockMax); err != nil {
				return fmt.Errorf("merge the port index: %w", err)
			}
			l.recentMu.RLock()
			err := mergeServices(services, l.recent, named)
			l.recentMu.RUnlock()
			if err != nil {
				return fmt.Errorf("merge the services index: %w", err)
			}
		}
		count := countOf(meta) + uint64(len(evs))
		if err := meta.Put(keyCount, binary.BigEndian.AppendUint64(nil, count)); err != nil {
			return err
		}
		if !l.noChain {
			if err := meta.Put(keyChainHead, head.bytes()); err != nil {
				return err
			}
		}
		if snap != nil {
			data, err := snap(count, evs)
			if err != nil {
				return fmt.Errorf("snapshot: %w", err)
			}
			if data != nil {
				if err := tx.Bucket(bucketSnapshots).Put(last[:], snapshotValue(head, data)); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		for i := range evs {
			evs[i].ID = ulid.Zero
		}
		return evs, fmt.Errorf("append: %w", err)
	}
	l.last = last
	l.head = head
	l.tailN = tailN
	l.recentMu.Lock()
	if merge {
		l.tailN = 0
		l.recent = lastPorts{}
	} else {
		maps.Copy(l.recent, named)
	}
	l.recentMu.Unlock()
	return evs, nil
}

// nextID returns an ID strictly greater than last: a fresh random ID in
// now's millisecond when the clock is ahead, else last plus one.
func (l *Log) nextID(last ulid.ULID, now time.Time) (ulid.ULID, error) {
	ms := uint64(max(now.UnixMilli(), 0))
	if ms > last.Time() {
		var id ulid.ULID
		if err := id.SetTime(ms); err != nil {
			return id, err
		}
		if _, err := io.ReadFull(l.entropy, id[6:]); err != nil {
			return id, fmt.Errorf("entropy: %w", err)
		}
		return id, nil
	}
	id := last
	for i := 15; i >= 6; i-- {
		id[i]++
		if id[i] != 0 {
			return id, nil
		}
	}
	// The random part overflowed: move to the next millisecond.
	var next ulid.ULID
	if err := next.SetTime(last.Time() + 1); err != nil {
		return next, err
	}
	return next, nil
}

func portKey(port int, id ulid.ULID) []byte {
	k := make([]byte, 18)
	binary.BigEndian.PutUint16(k, uint16(port))
	copy(k[2:], id[:])
	return k
}

func countOf(meta *bolt.Bucket) uint64 {
	if v := meta.Get(keyCount); len(v) == 8 {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}
