package ledger_test

import (
	"bytes"
	"github.com/portledger/portledger/internal/ledgertest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/matryer/is"
	"github.com/oklog/ulid/v2"
	"github.com/portledger/portledger/internal/ledgerfile"
	"github.com/portledger/portledger/ledger"
	bolt "go.etcd.io/bbolt"
)

// chainedLog writes a log of appended events in batches, with an import of
// three events into its past between them, closes it and returns its path
// and the events in chain (commit) order.
func chainedLog(t *testing.T) (string, []ledger.Event) {
	t.Helper()
	is := is.New(t)
	path := filepath.Join(t.TempDir(), "ledger.db")
	clock := ledgertest.NewClock(time.Date(2025, 11, 15, 14, 30, 0, 0, time.UTC), 0)
	l, err := ledger.Open(path, ledger.Options{Now: clock.Now})
	is.NoErr(err) // open
	var order []ledger.Event
	for i := range 3 {
		clock.Add(time.Second)
		order = append(order, mustAppend(t, l, stats(8000+i, 1), stats(8010+i, 2))...)
	}
	past := []ledger.Event{stats(8050, 7), stats(8051, 8), stats(8052, 9)}
	for i := range past {
		past[i].ID = ledger.SinceID(clock.Now().Add(-time.Hour - time.Duration(i)*time.Minute))
		past[i].Imported = &ledger.ImportSource{File: "allocations_20251115.jsonl", Line: i + 1}
	}
	is.NoErr(l.Insert(past)) // import into the past
	// Insert chains them in ID order: the last of past is the oldest.
	order = append(order, past[2], past[1], past[0])
	for i := range 3 {
		clock.Add(time.Second)
		order = append(order, mustAppend(t, l, stats(8020+i, 3), stats(8030+i, 4))...)
	}
	r, err := l.VerifyChain()
	is.NoErr(err)
	is.True(r.OK())                             // the untouched chain holds
	is.Equal(r.Checked, uint64(len(order)))     // every link checked
	is.Equal(r.Head, l.ChainHead())             // the head in meta is the log's
	is.Equal(r.Head.ID, order[len(order)-1].ID) // the newest link is the last event written
	is.NoErr(l.Close())
	return path, order
}

// editFile changes a closed ledger file with bbolt directly, as an attacker
// with the file would.
func editFile(t *testing.T, path string, edit func(events ledgerfile.Events) error) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatalf("open with bbolt: %v", err)
	}
	if err := db.Update(func(tx *bolt.Tx) error { return edit(ledgerfile.Events{Tx: tx}) }); err != nil {
		t.Fatalf("edit: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
}

func verifyFile(t *testing.T, path string) ledger.ChainReport {
	t.Helper()
	l, err := ledger.Open(path, ledger.Options{})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	defer l.Close()
	r, err := l.VerifyChain()
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	return r
}

func TestVerifyChainNamesTheFirstBrokenLink(t *testing.T) {
	// Each edit is what a few lines of bbolt code do to the file; want is
	// the index, in chain order, of the event that the report must name
	// (-1: the head), and problem a word of its explanation.
	tests := []struct {
		name    string
		edit    func(order []ledger.Event) func(ledgerfile.Events) error
		want    int
		problem string
	}{
		{"delete one event", func(o []ledger.Event) func(ledgerfile.Events) error {
			return func(b ledgerfile.Events) error { return b.Delete(o[3].ID[:]) }
		}, 4, "missing"},
		{"change one byte of an event", func(o []ledger.Event) func(ledgerfile.Events) error {
			return func(b ledgerfile.Events) error {
				v := bytes.Clone(b.Get(o[2].ID[:]))
				v[4] ^= 1 // the stats payload's first byte
				return b.Put(o[2].ID[:], v)
			}
		}, 2, "changed"},
		{"reorder two events", func(o []ledger.Event) func(ledgerfile.Events) error {
			return func(b ledgerfile.Events) error {
				v1, v2 := bytes.Clone(b.Get(o[1].ID[:])), bytes.Clone(b.Get(o[4].ID[:]))
				if err := b.Put(o[1].ID[:], v2); err != nil {
					return err
				}
				return b.Put(o[4].ID[:], v1)
			}
		}, 1, "link"},
		{"change one byte of an imported event", func(o []ledger.Event) func(ledgerfile.Events) error {
			return func(b ledgerfile.Events) error {
				v := bytes.Clone(b.Get(o[7].ID[:]))
				v[4] ^= 1
				return b.Put(o[7].ID[:], v)
			}
		}, 7, "changed"},
		{"delete the newest event", func(o []ledger.Event) func(ledgerfile.Events) error {
			return func(b ledgerfile.Events) error { return b.Delete(o[len(o)-1].ID[:]) }
		}, -1, "ends at"},
		{"rewrite an event and its link", func(o []ledger.Event) func(ledgerfile.Events) error {
			// The attacker recomputes nothing but copies another event's
			// value and link in its place.
			return func(b ledgerfile.Events) error { return b.Put(o[5].ID[:], bytes.Clone(b.Get(o[4].ID[:]))) }
		}, 5, "link"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			path, order := chainedLog(t)
			editFile(t, path, tt.edit(order))
			r := verifyFile(t, path)
			is.True(!r.OK()) // the edit is caught
			want := r.Head.ID
			if tt.want >= 0 {
				want = order[tt.want].ID
			}
			is.Equal(r.Break.EventID, want)                        // the first bad link is named
			is.True(strings.Contains(r.Break.Problem, tt.problem)) // and explained
		})
	}
}

// stripChain turns a chained file into one written before the chain: no
// trailers, no chain flags, no chain keys in meta.
func stripChain(t *testing.T, path string) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error {
		b := ledgerfile.Events{Tx: tx}
		type kv struct{ k, v []byte }
		var all []kv
		_ = b.ForEach(func(k, v []byte) error {
			v = bytes.Clone(v[:len(v)-22])
			v[2] &^= 0xC0
			all = append(all, kv{bytes.Clone(k), v})
			return nil
		})
		for _, e := range all {
			if err := b.Put(e.k, e.v); err != nil {
				return err
			}
		}
		snaps := tx.Bucket([]byte("snapshots"))
		var sk, sv [][]byte
		_ = snaps.ForEach(func(k, v []byte) error {
			if len(v) > 0 && v[0] == 0 {
				sk, sv = append(sk, bytes.Clone(k)), append(sv, bytes.Clone(v[41:]))
			}
			return nil
		})
		for i := range sk {
			if err := snaps.Put(sk[i], sv[i]); err != nil {
				return err
			}
		}
		meta := tx.Bucket([]byte("meta"))
		_ = meta.Delete([]byte("chain_head"))
		return meta.Delete([]byte("chain_base"))
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestOpenChainsAFileWrittenBeforeTheChain(t *testing.T) {
	is := is.New(t)
	path, order := chainedLog(t)
	stripChain(t, path)

	l, err := ledger.Open(path, ledger.Options{})
	is.NoErr(err)                                   // an unchained file opens
	is.Equal(l.ChainHead().Seq, uint64(len(order))) // its events became the chain's first links
	more := mustAppend(t, l, stats(8099, 1))
	r, err := l.VerifyChain()
	is.NoErr(err)
	is.True(r.OK())                           // the upgraded chain holds
	is.Equal(r.Unchained, uint64(len(order))) // folded into the base
	is.Equal(r.Head.ID, more[0].ID)           // and goes on with new events
	is.NoErr(l.Close())

	editFile(t, path, func(b ledgerfile.Events) error {
		v := bytes.Clone(b.Get(order[2].ID[:]))
		v[4] ^= 1
		return b.Put(order[2].ID[:], v)
	})
	r = verifyFile(t, path)
	is.True(!r.OK())                                               // a change before the upgrade is caught
	is.True(strings.Contains(r.Break.Problem, "before the chain")) // as one of the events before it
}

func TestAcceptBrokenChain(t *testing.T) {
	is := is.New(t)
	path, order := chainedLog(t)
	editFile(t, path, func(b ledgerfile.Events) error { return b.Delete(order[3].ID[:]) })

	l, err := ledger.Open(path, ledger.Options{})
	is.NoErr(err)
	r, ev, err := l.AcceptBrokenChain("uid 1000")
	is.NoErr(err)
	is.Equal(len(r.Breaks), 1)                        // one break found
	is.Equal(ev.Type, ledger.EventChainAccepted)      // and recorded as an event
	is.Equal(ev.ChainAccepted.EventID, order[4].ID)   // naming it
	is.Equal(ev.ChainAccepted.AcceptedBy, "uid 1000") // and who accepted it
	r, err = l.VerifyChain()
	is.NoErr(err)
	is.True(r.OK())              // the accepted break no longer fails the walk
	is.Equal(len(r.Accepted), 1) // but it is still reported
	got, err := l.Get(ev.ID)
	is.NoErr(err)
	is.Equal(got.ChainAccepted.Problem, ev.ChainAccepted.Problem) // the event is in the log
	is.NoErr(l.Close())

	// A new edit after the acceptance is caught.
	editFile(t, path, func(b ledgerfile.Events) error { return b.Delete(order[8].ID[:]) })
	r = verifyFile(t, path)
	is.True(!r.OK())                       // a second break fails again
	is.Equal(r.Break.EventID, order[9].ID) // and is named
}

func TestVerifyChainSinceSnapshot(t *testing.T) {
	is := is.New(t)
	path := filepath.Join(t.TempDir(), "ledger.db")
	l, err := ledger.Open(path, ledger.Options{})
	is.NoErr(err)
	snap := func(n uint64, _ []ledger.Event) ([]byte, error) {
		if n%4 == 0 {
			return []byte(`{"snap":true}`), nil
		}
		return nil, nil
	}
	var evs []ledger.Event
	for i := range 10 {
		out, err := l.Append([]ledger.Event{stats(8000+i, 1)}, snap)
		is.NoErr(err)
		evs = append(evs, out...)
	}
	_, data, ok, err := l.Snapshot(ulid.ULID{})
	is.NoErr(err)
	is.True(ok)
	is.Equal(string(data), `{"snap":true}`) // a snapshot reads back without its chain head
	r, err := l.VerifyChainSinceSnapshot()
	is.NoErr(err)
	is.True(r.OK())             // holds
	is.Equal(r.From, uint64(8)) // from the snapshot after the 8th event
	is.Equal(r.Checked, uint64(2))
	is.NoErr(l.Close())

	editFile(t, path, func(b ledgerfile.Events) error {
		v := bytes.Clone(b.Get(evs[8].ID[:]))
		v[4] ^= 1
		return b.Put(evs[8].ID[:], v)
	})
	l, err = ledger.Open(path, ledger.Options{})
	is.NoErr(err)
	defer l.Close()
	r, err = l.VerifyChainSinceSnapshot()
	is.NoErr(err)
	is.True(!r.OK())                     // an edit after the snapshot is caught at start
	is.Equal(r.Break.EventID, evs[8].ID) // and named
}

func TestStartCheckAfterUpgradeBeginsAtTheBase(t *testing.T) {
	is := is.New(t)
	path := filepath.Join(t.TempDir(), "ledger.db")
	l, err := ledger.Open(path, ledger.Options{})
	is.NoErr(err)
	snap := func(n uint64, _ []ledger.Event) ([]byte, error) { return []byte(`{"snap":true}`), nil }
	for i := range 5 {
		_, err := l.Append([]ledger.Event{stats(8000+i, 1)}, snap)
		is.NoErr(err)
	}
	is.NoErr(l.Close())
	stripChain(t, path) // a file from before the chain, snapshots and all

	l, err = ledger.Open(path, ledger.Options{})
	is.NoErr(err)
	r, err := l.VerifyChainSinceSnapshot()
	is.NoErr(err)
	is.True(r.OK())
	is.Equal(r.From, uint64(5))    // the start check begins at the base, not the first event
	is.Equal(r.Checked, uint64(0)) // nothing chained since
	_, data, ok, err := l.Snapshot(ulid.ULID{})
	is.NoErr(err)
	is.True(ok)
	is.Equal(string(data), `{"snap":true}`) // the snapshot still reads
	more := mustAppend(t, l, stats(8010, 1), stats(8011, 1))
	r, err = l.VerifyChainSinceSnapshot()
	is.NoErr(err)
	is.True(r.OK())
	is.Equal(r.Checked, uint64(2)) // the events since the upgrade
	is.NoErr(l.Close())

	editFile(t, path, func(b ledgerfile.Events) error {
		v := bytes.Clone(b.Get(more[0].ID[:]))
		v[4] ^= 1
		return b.Put(more[0].ID[:], v)
	})
	l, err = ledger.Open(path, ledger.Options{})
	is.NoErr(err)
	defer l.Close()
	r, err = l.VerifyChainSinceSnapshot()
	is.NoErr(err)
	is.True(!r.OK())                      // caught at start
	is.Equal(r.Break.EventID, more[0].ID) // and named
}

func TestAcceptBrokenChainWhenTheSnapshotsEventIsGone(t *testing.T) {
	is := is.New(t)
	path := filepath.Join(t.TempDir(), "ledger.db")
	l, err := ledger.Open(path, ledger.Options{})
	is.NoErr(err)
	snap := func(n uint64, _ []ledger.Event) ([]byte, error) {
		if n == 3 {
			return []byte(`{}`), nil
		}
		return nil, nil
	}
	var evs []ledger.Event
	for i := range 5 {
		out, err := l.Append([]ledger.Event{stats(8000+i, 1)}, snap)
		is.NoErr(err)
		evs = append(evs, out...)
	}
	is.NoErr(l.Close())
	// Remove the last three events, the snapshot's own among them.
	editFile(t, path, func(b ledgerfile.Events) error {
		for _, e := range evs[2:] {
			if err := b.Delete(e.ID[:]); err != nil {
				return err
			}
		}
		return nil
	})
	l, err = ledger.Open(path, ledger.Options{})
	is.NoErr(err)
	defer l.Close()
	r, err := l.VerifyChainSinceSnapshot()
	is.NoErr(err)
	is.True(!r.OK()) // the start check sees it
	_, _, err = l.AcceptBrokenChain("test")
	is.NoErr(err)
	r, err = l.VerifyChainSinceSnapshot()
	is.NoErr(err)
	is.True(r.OK()) // once accepted, the next start goes on
	r, err = l.VerifyChain()
	is.NoErr(err)
	is.True(r.OK()) // and so does a full walk
}
