package ledger_test

import (
	"github.com/portledger/portledger/internal/ledgertest"
	"path/filepath"
	"testing"

	"github.com/matryer/is"
	"github.com/oklog/ulid/v2"
	"github.com/portledger/portledger/ledger"
	bolt "go.etcd.io/bbolt"
)

func allocatedEvent(port int, service string) ledger.Event {
	return ledger.Event{Type: ledger.EventAllocated, Port: port, Allocated: &ledger.Allocated{ServiceName: service}}
}

func lastPort(t *testing.T, l *ledger.Log, service string) (int, bool) {
	t.Helper()
	p, ok, err := l.LastPort(service)
	if err != nil {
		t.Fatalf("last port: %v", err)
	}
	return p, ok
}

func TestLastPortIndex(t *testing.T) {
	is := is.New(t)
	path := filepath.Join(t.TempDir(), "ledger.db")
	l, err := ledger.Open(path, ledger.Options{})
	is.NoErr(err) // open
	_, ok := lastPort(t, l, "api")
	is.True(!ok) // a service never seen

	mustAppend(t, l, allocatedEvent(8000, "api"), allocatedEvent(8001, "web"), stats(8000, 3))
	mustAppend(t, l, allocatedEvent(8002, "api"))
	p, ok := lastPort(t, l, "api")
	is.True(ok)       // seen
	is.Equal(p, 8002) // its newest allocation
	p, _ = lastPort(t, l, "web")
	is.Equal(p, 8001)

	// An import into the past names the last port only of a service the
	// log has not seen: the log's own allocations are newer.
	past := ulid.MustNew(1, nil)
	older := ulid.MustNew(2, nil)
	imp := []ledger.Event{allocatedEvent(8050, "api"), allocatedEvent(8051, "old"), allocatedEvent(8052, "old")}
	imp[0].ID, imp[1].ID, imp[2].ID = past, past, older
	imp[1].ID[15] = 1
	imp[0].Imported, imp[1].Imported, imp[2].Imported = &ledger.ImportSource{File: "f", Line: 1}, &ledger.ImportSource{File: "f", Line: 2}, &ledger.ImportSource{File: "f", Line: 3}
	is.NoErr(l.Insert(imp)) // import
	p, _ = lastPort(t, l, "api")
	is.Equal(p, 8002) // the live allocation still wins
	p, ok = lastPort(t, l, "old")
	is.True(ok)       // an imported service is known
	is.Equal(p, 8052) // by its newest imported allocation

	is.NoErr(l.Close()) // close
	l = ledgertest.MustOpenLogAt(t, path, ledger.Options{})
	p, _ = lastPort(t, l, "api")
	is.Equal(p, 8002) // kept across a reopen
}

// A file written before the index gets it, built from its events, at its
// first writable open.
func TestLastPortIndexBackfilled(t *testing.T) {
	is := is.New(t)
	path := filepath.Join(t.TempDir(), "ledger.db")
	l, err := ledger.Open(path, ledger.Options{})
	is.NoErr(err) // open
	mustAppend(t, l, allocatedEvent(8000, "api"), allocatedEvent(8001, "web"))
	mustAppend(t, l, allocatedEvent(8003, "api"))
	is.NoErr(l.Close())

	db, err := bolt.Open(path, 0o600, nil)
	is.NoErr(err)                                                                               // open the file as bbolt
	is.NoErr(db.Update(func(tx *bolt.Tx) error { return tx.DeleteBucket([]byte("services")) })) // as an older file
	is.NoErr(db.Close())

	l = ledgertest.MustOpenLogAt(t, path, ledger.Options{})
	p, ok := lastPort(t, l, "api")
	is.True(ok)       // rebuilt
	is.Equal(p, 8003) // from the newest allocation
	p, _ = lastPort(t, l, "web")
	is.Equal(p, 8001)
}

// TestLastPortIndexTail: a commit does not write the services bucket; the
// tail's allocations are answered from memory, rebuilt by a reopen, and
// written to the bucket, in one go, by the commit that merges the tail.
func TestLastPortIndexTail(t *testing.T) {
	is := is.New(t)
	path := filepath.Join(t.TempDir(), "ledger.db")
	opts := ledger.Options{PortIndexTail: 4}
	l, err := ledger.Open(path, opts)
	is.NoErr(err) // open
	inBucket := func(service string) bool {
		t.Helper()
		is.NoErr(l.Close())
		db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
		is.NoErr(err) // open the file with bbolt
		var found bool
		is.NoErr(db.View(func(tx *bolt.Tx) error {
			found = tx.Bucket([]byte("services")).Get([]byte(service)) != nil
			return nil
		}))
		is.NoErr(db.Close())
		l, err = ledger.Open(path, opts)
		is.NoErr(err) // reopen
		return found
	}

	mustAppend(t, l, allocatedEvent(8000, "api"), allocatedEvent(8001, "web"))
	mustAppend(t, l, allocatedEvent(8002, "api"))
	p, ok := lastPort(t, l, "api")
	is.True(ok)                  // answered from the tail
	is.Equal(p, 8002)            // its newest allocation
	is.True(!inBucket("api"))    // which the commits did not write to the bucket
	p, _ = lastPort(t, l, "api") // (inBucket reopened the log)
	is.Equal(p, 8002)            // the reopen rebuilt the tail's services
	p, _ = lastPort(t, l, "web")
	is.Equal(p, 8001)

	mustAppend(t, l, allocatedEvent(8003, "db"))                  // the fourth event with a port: the merge
	is.True(inBucket("api") && inBucket("web") && inBucket("db")) // all written by the merge
	for service, want := range map[string]int{"api": 8002, "web": 8001, "db": 8003} {
		p, ok := lastPort(t, l, service)
		is.True(ok)       // known
		is.Equal(p, want) // from the bucket now
	}
	mustAppend(t, l, allocatedEvent(8004, "api"))
	p, _ = lastPort(t, l, "api")
	is.Equal(p, 8004)   // the tail's newer allocation wins over the bucket's
	is.NoErr(l.Check()) // consistent
	is.NoErr(l.Close())
}
