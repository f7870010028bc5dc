package ledger

import (
	"github.com/oklog/ulid/v2"
	bolt "go.etcd.io/bbolt"
)

// positionPrefix starts the meta keys of named positions, such as the
// fleet's publishing cursor.
const positionPrefix = "position/"

// Position returns the event ID stored under name by SetPosition, or the
// zero ID when none was stored.
func (l *Log) Position(name string) (ulid.ULID, error) {
	var id ulid.ULID
	err := l.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketMeta).Get([]byte(positionPrefix + name)); len(v) == len(id) {
			copy(id[:], v)
		}
		return nil
	})
	return id, err
}

// SetPosition stores id under name in the log's meta bucket, in a
// transaction of its own: a reader of the log (a projection elsewhere, the
// fleet publisher) keeps where it stopped in the file it reads.
func (l *Log) SetPosition(name string, id ulid.ULID) error {
	if name == "" {
		return Errorf(EINVALID, "a position needs a name")
	}
	return l.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put([]byte(positionPrefix+name), id[:])
	})
}

// SetPositions stores several named positions in one transaction.
func (l *Log) SetPositions(pos map[string]ulid.ULID) error {
	for name := range pos {
		if name == "" {
			return Errorf(EINVALID, "a position needs a name")
		}
	}
	return l.db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		for name, id := range pos {
			if err := meta.Put([]byte(positionPrefix+name), id[:]); err != nil {
				return err
			}
		}
		return nil
	})
}
