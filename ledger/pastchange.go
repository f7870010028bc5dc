package ledger

import (
	"bytes"
	"encoding/binary"

	"github.com/oklog/ulid/v2"
	bolt "go.etcd.io/bbolt"
)

// keyPastChanged in the meta bucket marks that Insert wrote into the past
// of the log and the file projections have not been rebuilt since: 16 bytes
// of the earliest ID inserted, then a uint64 that every Insert increments.
// The mark is written in the insert's own transaction, so a process killed
// between the insert and the rebuild leaves it behind, and the next start
// mends the files (see projection.Files.Mend).
var keyPastChanged = []byte("past_changed")

// PastChange is the mark Insert leaves: the earliest event inserted since
// the file projections were last rebuilt.
type PastChange struct {
	// Since is the earliest inserted ID.
	Since ulid.ULID
	// Seq tells one mark from the next, for ClearPastChange.
	Seq uint64
}

// putPastChange records in tx that events from since on were inserted.
func putPastChange(meta *bolt.Bucket, since ulid.ULID) error {
	pc, ok := pastChangeOf(meta)
	if ok && pc.Since.Compare(since) < 0 {
		since = pc.Since
	}
	v := append(since[:], binary.BigEndian.AppendUint64(nil, pc.Seq+1)...)
	return meta.Put(keyPastChanged, v)
}

func pastChangeOf(meta *bolt.Bucket) (PastChange, bool) {
	v := meta.Get(keyPastChanged)
	if len(v) != 24 {
		return PastChange{}, false
	}
	var pc PastChange
	copy(pc.Since[:], v[:16])
	pc.Seq = binary.BigEndian.Uint64(v[16:])
	return pc, true
}

// PastChanged returns the mark Insert left, if the file projections have
// not been rebuilt since.
func (l *Log) PastChanged() (pc PastChange, ok bool, err error) {
	err = l.db.View(func(tx *bolt.Tx) error {
		pc, ok = pastChangeOf(tx.Bucket(bucketMeta))
		return nil
	})
	return pc, ok, err
}

// ClearPastChange removes the mark once the files are rebuilt, unless an
// Insert has left a newer one meanwhile.
func (l *Log) ClearPastChange(pc PastChange) error {
	return l.db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		cur, ok := pastChangeOf(meta)
		if !ok || cur.Seq != pc.Seq || !bytes.Equal(cur.Since[:], pc.Since[:]) {
			return nil
		}
		return meta.Delete(keyPastChanged)
	})
}
