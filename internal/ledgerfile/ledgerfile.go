// Package ledgerfile reaches the events of a ledger file with bbolt
// directly, as the tests that damage a file do (an attacker with the file
// would do the same). The events are in two buckets (ledger/eventstail.go):
// events, up to the port index mark, and events_tail, after it.
package ledgerfile

import (
	"github.com/oklog/ulid/v2"
	bolt "go.etcd.io/bbolt"
)

// Bucket names of the events, oldest first.
var (
	BucketEvents = []byte("events")
	BucketTail   = []byte("events_tail")
)

// Events edits the events of a ledger file as one bucket.
type Events struct{ Tx *bolt.Tx }

// bucket returns the bucket that holds key, or the events bucket when none
// does.
func (e Events) bucket(key []byte) *bolt.Bucket {
	if t := e.Tx.Bucket(BucketTail); t != nil && t.Get(key) != nil {
		return t
	}
	return e.Tx.Bucket(BucketEvents)
}

// Get returns the stored value of event key, or nil.
func (e Events) Get(key []byte) []byte { return e.bucket(key).Get(key) }

// Put stores v as event key, in the bucket that holds it (events for a new
// key).
func (e Events) Put(key, v []byte) error { return e.bucket(key).Put(key, v) }

// Delete removes event key from the bucket that holds it.
func (e Events) Delete(key []byte) error { return e.bucket(key).Delete(key) }

// ForEach calls fn for every event, oldest first.
func (e Events) ForEach(fn func(k, v []byte) error) error {
	for _, name := range [][]byte{BucketEvents, BucketTail} {
		if b := e.Tx.Bucket(name); b != nil {
			if err := b.ForEach(fn); err != nil {
				return err
			}
		}
	}
	return nil
}

// Keys returns every event's key, oldest first, copied.
func (e Events) Keys() [][]byte {
	var keys [][]byte
	_ = e.ForEach(func(k, _ []byte) error {
		keys = append(keys, append([]byte(nil), k...))
		return nil
	})
	return keys
}

// EntryKey is the key of one event in the by_port bucket as versions
// before blocks of IDs wrote it: the port, two bytes big-endian, then the
// event's ID. Tests write files of those versions with it.
func EntryKey(port int, id ulid.ULID) []byte {
	return append([]byte{byte(port >> 8), byte(port)}, id[:]...)
}
