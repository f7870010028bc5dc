package ledger

import (
	"encoding/binary"
	"fmt"

	"github.com/oklog/ulid/v2"
	bolt "go.etcd.io/bbolt"
)

// bucketServices is the index of the port each service held last: service
// name -> 2-byte port. The writer reads it for sticky allocation, so neither
// memory nor the registry's snapshots grow with the number of service names
// ever seen (a CI host that names services after its runs sees millions).
var bucketServices = []byte("services")

// LastPort returns the port the service was allocated last, and false when
// the log has never allocated a port to it.
func (l *Log) LastPort(service string) (int, bool, error) {
	var port int
	var ok bool
	err := l.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketServices)
		if b == nil {
			return nil // a read-only file written before the index
		}
		if v := b.Get([]byte(service)); len(v) == 2 {
			port, ok = int(binary.BigEndian.Uint16(v)), true
		}
		return nil
	})
	if err != nil {
		return 0, false, fmt.Errorf("last port of %q: %w", service, err)
	}
	return port, ok, nil
}

// indexService records e's port as its service's last one, writing only
// when it changed: a service that gets its port back, as most do, costs
// nothing here.
func indexService(b *bolt.Bucket, e *Event) error {
	if e.Type != EventAllocated || e.Allocated == nil || e.Port <= 0 {
		return nil
	}
	v := binary.BigEndian.AppendUint16(nil, uint16(e.Port))
	key := []byte(e.Allocated.ServiceName)
	if old := b.Get(key); len(old) == 2 && old[0] == v[0] && old[1] == v[1] {
		return nil
	}
	return b.Put(key, v)
}

// backfillServices builds the index from every event of a file written
// before it existed; Open does it once, in the transaction that creates the
// bucket.
func backfillServices(tx *bolt.Tx, b *bolt.Bucket) error {
	c := tx.Bucket(bucketEvents).Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		e, err := DecodeEvent(ulid.ULID(k), v)
		if err != nil {
			return fmt.Errorf("index the services: %w", err)
		}
		if err := indexService(b, &e); err != nil {
			return err
		}
	}
	return nil
}
