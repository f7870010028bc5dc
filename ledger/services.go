package ledger

import (
	"encoding/binary"
	"fmt"
	"maps"
	"slices"

	"github.com/oklog/ulid/v2"
	bolt "go.etcd.io/bbolt"
)

// bucketServices is the index of the port each service held last: service
// name -> 2-byte port. The writer reads it for sticky allocation, so neither
// memory nor the registry's snapshots grow with the number of service names
// ever seen (a CI host that names services after its runs sees millions).
//
// Like the port index (porttail.go), it is written when the port index's
// tail is merged, not by every commit: with a million names its B+tree is
// four pages deep, and a commit that wrote a new name would rewrite all four.
// The allocations of the tail, the events after the index mark, are kept in
// memory (Log.recent, rebuilt from the tail by Open) and answered first.
var bucketServices = []byte("services")

// servicesFill is how full the merge packs the services index's pages. Names
// that CI tools make from a run number or a date grow, so most of a merge's
// new names land at the end of their run of names, where bbolt's default
// half-full split would leave every page half empty for good; names that do
// not grow still find a tenth of a page free.
const servicesFill = 0.9

// LastPort returns the port the service was allocated last, and false when
// the log has never allocated a port to it.
func (l *Log) LastPort(service string) (int, bool, error) {
	l.recentMu.RLock()
	p, ok := l.recent[service]
	l.recentMu.RUnlock()
	if ok {
		return int(p), true, nil
	}
	var port int
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
	return putLastPort(b, e.Allocated.ServiceName, e.Port)
}

// putLastPort records port as service's last one, writing only when it
// changed.
func putLastPort(b *bolt.Bucket, service string, port int) error {
	v := binary.BigEndian.AppendUint16(nil, uint16(port))
	key := []byte(service)
	if old := b.Get(key); len(old) == 2 && old[0] == v[0] && old[1] == v[1] {
		return nil
	}
	return b.Put(key, v)
}

// backfillServices builds the index from every event of a file written
// before it existed; Open does it once, in the transaction that creates the
// bucket.
func backfillServices(tx *bolt.Tx, b *bolt.Bucket) error {
	c := eventsCursor(tx)
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

// lastPorts is the services' last ports of a run of events, name -> port.
type lastPorts map[string]uint16

// note records e's port as its service's last one, for an allocation.
func (m lastPorts) note(e *Event) {
	if e.Type == EventAllocated && e.Allocated != nil && e.Port > 0 {
		m[e.Allocated.ServiceName] = uint16(e.Port)
	}
}

// noteEncoded records the port of the encoded event k, v of the index's
// tail as its service's last one, for an allocation it can decode. An
// imported allocation is the service's last port only for a service the log
// has never seen, as Insert has it.
func (m lastPorts) noteEncoded(tx *bolt.Tx, k, v []byte) {
	if len(v) < 3 || v[1] != typeCodes[EventAllocated] {
		return
	}
	e, err := DecodeEvent(ulid.ULID(k), v)
	if err != nil || e.Allocated == nil {
		return
	}
	if v[2]&flagInserted != 0 {
		name := e.Allocated.ServiceName
		services := tx.Bucket(bucketServices)
		if _, seen := m[name]; seen || (services != nil && services.Get([]byte(name)) != nil) {
			return
		}
	}
	m.note(&e)
}

// mergeServices writes the last ports of the tail's services, recent and
// then batch's, into the services bucket, in name order.
func mergeServices(b *bolt.Bucket, recent, batch lastPorts) error {
	all := maps.Clone(recent)
	maps.Copy(all, batch)
	for _, name := range slices.Sorted(maps.Keys(all)) {
		if err := putLastPort(b, name, int(all[name])); err != nil {
			return err
		}
	}
	return nil
}
