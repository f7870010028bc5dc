package commands_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/matryer/is"
	"github.com/portledger/portledger/commands"
	"github.com/portledger/portledger/ledger"
)

// A service gets its last port back after a restart that folds from a
// snapshot taken after its allocation: the log's index of last ports, not
// the snapshot, remembers it.
func TestStickyAcrossSnapshotsAndRestart(t *testing.T) {
	is := is.New(t)
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "ledger.db")
	cfg := commands.Config{SnapshotEvery: 3, PortFree: func(int) error { return nil }}
	open := func() (*commands.Ledger, *ledger.Log) {
		log, err := ledger.Open(path, ledger.Options{})
		is.NoErr(err) // open log
		cfg.Log = log
		l, err := commands.New(cfg)
		is.NoErr(err) // start commands
		return l, log
	}
	l, log := open()
	is.NoErr(l.SetRange(ctx, testRange)) // range
	var held []int
	for i := range 4 {
		a, err := l.Allocate(ctx, ledger.AllocateRequest{ServiceName: fmt.Sprintf("hold%d", i)})
		is.NoErr(err) // the lower ports are held
		held = append(held, a.Port)
	}
	api, err := l.Allocate(ctx, ledger.AllocateRequest{ServiceName: "api"})
	is.NoErr(err) // api's port
	_, err = l.Release(ctx, ledger.ReleaseRequest{Port: api.Port, Reason: "done"})
	is.NoErr(err) // api stops
	for _, p := range held[:2] {
		_, err = l.Release(ctx, ledger.ReleaseRequest{Port: p, Reason: "done"})
		is.NoErr(err) // lower ports free up, so lowest-free would not give api's
	}
	for i := range 7 {
		_, err := l.Allocate(ctx, ledger.AllocateRequest{ServiceName: fmt.Sprintf("churn%d", i), Port: testRange.Hi - i})
		is.NoErr(err) // more events: snapshots after api's allocation
	}
	is.NoErr(l.Close())
	is.NoErr(log.Close())

	l, log = open()
	defer log.Close()
	defer l.Close()
	again, err := l.Allocate(ctx, ledger.AllocateRequest{ServiceName: "api"})
	is.NoErr(err)                  // api starts again
	is.Equal(again.Port, api.Port) // on its port, remembered across the restart
}
