package ledger

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/oklog/ulid/v2"
	bolt "go.etcd.io/bbolt"
)

// Insert writes events that already have their IDs, such as events imported
// from the original port manager's files, which carry their original times
// and so land in the past of the log. Each event's At is set from its ID.
// The events, their port index entries and the new count are written in one
// transaction. Every snapshot whose key is at or after the earliest inserted
// ID is deleted in the same transaction, because it no longer folds the
// whole past; see PutSnapshots to take them again.
//
// Insert refuses, with ECONFLICT and without writing anything, an ID that is
// already in the log or given twice, and with EINVALID a zero ID.
func (l *Log) Insert(evs []Event) error {
	if len(evs) == 0 {
		return nil
	}
	sorted := slices.Clone(evs)
	slices.SortFunc(sorted, func(a, b Event) int { return a.ID.Compare(b.ID) })
	for i := range sorted {
		if sorted[i].ID.IsZero() {
			return Errorf(EINVALID, "insert: an event without an ID")
		}
		if i > 0 && sorted[i].ID == sorted[i-1].ID {
			return Errorf(ECONFLICT, "insert: event %s given twice", sorted[i].ID)
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	last := l.last
	head := l.head
	tailed := 0
	var buf []byte
	err := l.db.Update(func(tx *bolt.Tx) error {
		byPort := tx.Bucket(bucketByPort)
		meta := tx.Bucket(bucketMeta)
		services := tx.Bucket(bucketServices)
		// An event after the index mark is in the index's tail already
		// (porttail.go); one before it needs its by_port entry.
		mark, _ := indexMark(tx)
		tailed = 0
		// An imported allocation is the service's last port only for a
		// service the log has never seen: the log's own are newer.
		unseen := map[string]bool{}
		for i := range sorted {
			e := &sorted[i]
			if getEvent(tx, e.ID[:]) != nil {
				return Errorf(ECONFLICT, "insert: event %s is already in the log", e.ID)
			}
			e.At = IDTime(e.ID)
			var err error
			buf, err = AppendEncoded(buf[:0], e)
			if err != nil {
				return err
			}
			buf[2] |= flagInserted
			var v []byte
			v, head = chainEvent(head, e.ID, buf)
			// After the mark, the event joins the events' tail.
			if err := eventsFor(tx, mark, e.ID).Put(e.ID[:], v); err != nil {
				return err
			}
			if e.Type == EventAllocated && e.Allocated != nil {
				name := e.Allocated.ServiceName
				if _, ok := unseen[name]; !ok {
					l.recentMu.RLock()
					_, recent := l.recent[name]
					l.recentMu.RUnlock()
					unseen[name] = !recent && services.Get([]byte(name)) == nil
				}
				if unseen[name] {
					if err := indexService(services, e); err != nil {
						return err
					}
				}
			}
			switch {
			case e.Port == 0:
			case e.ID.Compare(mark) > 0:
				tailed++
			default:
				if err := insertIntoPort(byPort, e.Port, e.ID, l.blockMax); err != nil {
					return err
				}
			}
			if e.ID.Compare(last) > 0 {
				last = e.ID
			}
		}
		count := countOf(meta) + uint64(len(sorted))
		if err := meta.Put(keyCount, binary.BigEndian.AppendUint64(nil, count)); err != nil {
			return err
		}
		if err := meta.Put(keyChainHead, head.bytes()); err != nil {
			return err
		}
		if err := putPastChange(meta, sorted[0].ID); err != nil {
			return err
		}
		// Collect first: deleting under a cursor skips keys.
		snaps := tx.Bucket(bucketSnapshots)
		var stale [][]byte
		c := snaps.Cursor()
		for k, _ := c.Seek(sorted[0].ID[:]); k != nil; k, _ = c.Next() {
			stale = append(stale, bytes.Clone(k))
		}
		for _, k := range stale {
			if err := snaps.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		if ErrorCode(err) != EINTERNAL {
			return err
		}
		return fmt.Errorf("insert: %w", err)
	}
	for i := range evs {
		evs[i].At = IDTime(evs[i].ID)
	}
	l.last = last
	l.head = head
	l.tailN += tailed
	return nil
}

// Has returns which of ids are in the log, in one read transaction.
func (l *Log) Has(ids []ulid.ULID) (map[ulid.ULID]bool, error) {
	found := make(map[ulid.ULID]bool)
	err := l.db.View(func(tx *bolt.Tx) error {
		for _, id := range ids {
			if getEvent(tx, id[:]) != nil {
				found[id] = true
			}
		}
		return nil
	})
	return found, err
}

// SnapshotAt is a registry snapshot and the ID of the last event it folds.
type SnapshotAt struct {
	ID   ulid.ULID
	Data []byte
}

// PutSnapshots stores snapshots in one transaction, replacing any under the
// same IDs. It is for rebuilding the snapshots that Insert deleted; Append
// takes them as it goes.
func (l *Log) PutSnapshots(snaps []SnapshotAt) error {
	if len(snaps) == 0 {
		return nil
	}
	l.mu.Lock()
	head := l.head
	l.mu.Unlock()
	err := l.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSnapshots)
		for _, s := range snaps {
			if err := b.Put(s.ID[:], snapshotValue(head, s.Data)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("put snapshots: %w", err)
	}
	return nil
}
