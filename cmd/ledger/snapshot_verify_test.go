package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/matryer/is"
	"github.com/oklog/ulid/v2"
	"github.com/portledger/portledger/commands"
	"github.com/portledger/portledger/ledger"
	bolt "go.etcd.io/bbolt"
)

// A snapshot edited in the file (the daemon starts from the newest one, so
// status would show the edit) is caught by `ledger verify`, which names it;
// the untouched log verifies with every snapshot compared.
func TestVerifyCatchesAnEditedSnapshot(t *testing.T) {
	is := is.New(t)
	data := t.TempDir()
	layout := ledger.Layout{Dir: data}
	log, err := ledger.Open(layout.DB(), ledger.Options{})
	is.NoErr(err)
	svc, err := commands.New(commands.Config{Log: log, SnapshotEvery: 3})
	is.NoErr(err)
	ctx := context.Background()
	for i := range 10 {
		a, err := svc.Allocate(ctx, ledger.AllocateRequest{ServiceName: fmt.Sprintf("svc-%d", i), StartedBy: "test"})
		is.NoErr(err)
		if i%3 == 0 {
			_, err = svc.Release(ctx, ledger.ReleaseRequest{Port: a.Port, Reason: "done"})
			is.NoErr(err)
		}
	}
	is.NoErr(svc.Close())
	is.NoErr(log.Close())

	out, _, err := runCLI(t, "verify", "--json", "--data", data)
	is.NoErr(err) // the log as written verifies
	var rep ledger.ChainReport
	is.NoErr(json.Unmarshal([]byte(out), &rep))
	is.True(rep.SnapshotsChecked >= 3) // its snapshots compared with the events
	is.True(rep.Snapshot == nil)

	// Rename a holder inside the newest snapshot, as a few lines of bbolt
	// code would; the chain of events is untouched.
	db, err := bolt.Open(layout.DB(), 0o600, &bolt.Options{Timeout: time.Second})
	is.NoErr(err)
	var edited ulid.ULID
	is.NoErr(db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("snapshots"))
		k, v := b.Cursor().Last()
		edited = ulid.ULID(k)
		i := bytes.Index(v, []byte(`"svc-`))
		if i < 0 {
			return fmt.Errorf("no service in the snapshot %q", v)
		}
		v = bytes.Clone(v)
		v[i+1] = 'S' // "svc-N" -> "Svc-N"
		return b.Put(k, v)
	}))
	is.NoErr(db.Close())

	out, _, err = runCLI(t, "verify", "--json", "--data", data)
	is.True(err != nil) // exit 1
	rep = ledger.ChainReport{}
	is.NoErr(json.Unmarshal([]byte(out), &rep))
	is.True(rep.Break == nil)                               // the events' chain holds
	is.True(rep.Snapshot != nil)                            // but the snapshot does not match them
	is.Equal(rep.Snapshot.ID, edited)                       // the one edited, named
	is.True(strings.Contains(rep.Snapshot.Problem, "Svc-")) // with what it says
	out, errOut, err := runCLI(t, "verify", "--data", data)
	is.True(err != nil)
	is.True(strings.Contains(out, "BROKEN the snapshot at event "+edited.String())) // in words
	is.True(strings.Contains(errOut+err.Error(), "a snapshot does not match the events"))
}
