package fleet_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"strings"
	"testing"
	"time"

	"github.com/matryer/is"
	"github.com/portledger/portledger/commands"
	"github.com/portledger/portledger/fleet"
	"github.com/portledger/portledger/fleet/hub"
	"github.com/portledger/portledger/internal/ledgerfile"
	"github.com/portledger/portledger/ledger"
	bolt "go.etcd.io/bbolt"
)

// The fleet keeps a copy of each host's chain head, and that copy catches
// what the ledger's own verify cannot: the newest events cut from the file
// with the chain head in meta set back to the last kept event's link. The
// publisher compares the head the fleet received with the ledger's at
// every (re)connection and, on a difference, publishes nothing more and
// says why.
func TestPublisherCatchesALogCutAfterItWasPublished(t *testing.T) {
	is := is.New(t)
	h := startHub(t, hub.Options{})
	url := h.ClientURL()
	hs := startHost(t, "alpha", url, fleet.PublisherConfig{})
	for _, svc := range []string{"api", "web"} {
		hs.allocate(t, svc)
	}
	hs.waitCaughtUp(t, 10*time.Second)
	path := hs.log.Path()

	// Keep the chain head and count as they are now, then write one more
	// event (a range change: it touches no port index) and publish it.
	reopen := func() {
		t.Helper()
		log, err := ledger.Open(path, ledger.Options{})
		is.NoErr(err)
		svc, err := commands.New(commands.Config{Log: log, PortFree: func(int) error { return nil }})
		is.NoErr(err)
		hs.log, hs.svc = log, svc
	}
	closeHost := func() {
		hs.stop()
		is.NoErr(hs.svc.Close())
		is.NoErr(hs.log.Close())
	}
	closeHost()
	var keptHead, keptCount []byte
	editFile(t, path, func(tx *bolt.Tx) error {
		meta := tx.Bucket([]byte("meta"))
		keptHead, keptCount = bytes.Clone(meta.Get([]byte("chain_head"))), bytes.Clone(meta.Get([]byte("count")))
		return nil
	})
	is.True(len(keptHead) > 0 && len(keptCount) == 8) // the file's own facts
	reopen()
	is.NoErr(hs.svc.SetRange(context.Background(), ledger.Range{Lo: 8000, Hi: 8099}))
	cut := hs.log.LastID()
	hs.start(t, url, fleet.PublisherConfig{})
	hs.waitCaughtUp(t, 10*time.Second)
	closeHost()

	// Cut it, and set the head and count back: the ledger's own walk of
	// its chain then finds nothing wrong.
	editFile(t, path, func(tx *bolt.Tx) error {
		if err := (ledgerfile.Events{Tx: tx}).Delete(cut[:]); err != nil {
			return err
		}
		meta := tx.Bucket([]byte("meta"))
		if err := meta.Put([]byte("chain_head"), keptHead); err != nil {
			return err
		}
		return meta.Put([]byte("count"), keptCount)
	})
	reopen()
	rep, err := hs.log.VerifyChain()
	is.NoErr(err)
	is.True(rep.OK())                                       // the cut is invisible to the ledger alone
	is.Equal(binary.BigEndian.Uint64(keptCount), uint64(2)) // two events are left

	hs.start(t, url, fleet.PublisherConfig{})
	waitFor(t, 10*time.Second, "the publisher to see the difference", func() bool {
		return strings.Contains(hs.pub.Status().LastError, "no longer has")
	})
	is.True(strings.Contains(hs.pub.Status().LastError, cut.String())) // naming the event the fleet holds
	hs.allocate(t, "after-the-cut")
	time.Sleep(500 * time.Millisecond) // a round's time: nothing more goes out
	ids := hostEvents(t, url, "alpha")
	is.Equal(len(ids), 3) // the two events and the cut one, no more
	is.Equal(ids[2], cut) // the fleet keeps the evidence
}

// editFile runs edit in one bbolt transaction on the closed ledger file.
func editFile(t *testing.T, path string, edit func(tx *bolt.Tx) error) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatalf("open with bbolt: %v", err)
	}
	if err := db.Update(edit); err != nil {
		t.Fatalf("edit: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
}
