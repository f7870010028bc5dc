package ledger

import (
	"io"

	bolt "go.etcd.io/bbolt"
)

// Backup writes a consistent copy of the whole ledger file to w in one read
// transaction (bbolt's Tx.WriteTo), so writers go on while it runs and the
// copy holds exactly the events committed before it began. began, if not
// nil, is told the copy's size before the first byte is written. It
// returns the number of bytes written.
func (l *Log) Backup(w io.Writer, began func(size int64)) (int64, error) {
	var n int64
	err := l.db.View(func(tx *bolt.Tx) error {
		if began != nil {
			began(tx.Size())
		}
		var err error
		n, err = tx.WriteTo(w)
		return err
	})
	return n, err
}
