package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/matryer/is"
	"github.com/oklog/ulid/v2"
	"github.com/portledger/portledger/httpapi"
	"github.com/portledger/portledger/internal/testbin"
	"github.com/portledger/portledger/ledger"
)

// backupRange is the managed range of the backup tests.
const backupRange = "30730-30799"

// TestBackupWhileServingRestoresEveryAcknowledgedEvent takes a backup
// through the real daemon while 16 clients allocate and release, restores
// it into a new data directory, and checks that replay --verify and verify
// accept it and that it holds every event acknowledged before the backup
// began.
func TestBackupWhileServingRestoresEveryAcknowledgedEvent(t *testing.T) {
	is := is.New(t)
	data := t.TempDir()
	env := testbin.Env(data, backupRange)
	startServeEnv(t, data, env, "--range", backupRange)

	var (
		mu    sync.Mutex
		acked []ulid.ULID
		errs  []error
	)
	ack := func(id ulid.ULID) {
		mu.Lock()
		acked = append(acked, id)
		mu.Unlock()
	}
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := httpapi.NewSocketClient(ledger.Layout{Dir: data}.Socket(), "")
			for ctx.Err() == nil {
				a, err := cl.Allocate(ctx, ledger.AllocateRequest{ServiceName: fmt.Sprintf("client%02d", i), StartedBy: "backup test"})
				if err != nil {
					if ctx.Err() == nil {
						mu.Lock()
						errs = append(errs, err)
						mu.Unlock()
					}
					return
				}
				ack(a.EventID)
				ev, err := cl.Release(context.WithoutCancel(ctx), ledger.ReleaseRequest{Port: a.Port, EventID: a.EventID})
				if err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					return
				}
				ack(ev.ID)
			}
		}()
	}
	// Let the load run, then note what is acknowledged before the backup
	// begins; the clients go on while it runs.
	testbin.WaitFor(t, "some events acknowledged", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(acked) >= 200
	})
	mu.Lock()
	before := append([]ulid.ULID(nil), acked...)
	mu.Unlock()
	file := filepath.Join(t.TempDir(), "ledger-backup.db")
	out, errOut, code := runEnv(t, env, "backup", file)
	stop()
	wg.Wait()
	is.Equal(errs, nil) // every client's command succeeded
	if code != 0 {
		t.Fatalf("backup: exit %d: %s", code, errOut)
	}
	is.True(strings.HasPrefix(out, "backed up ")) // says what it copied
	mu.Lock()
	t.Logf("%d events acknowledged before the backup began, %d in all", len(before), len(acked))
	mu.Unlock()

	// A daemon serves data: restoring onto it is refused.
	_, errOut, code = runEnv(t, env, "restore", file, "--data", data)
	is.Equal(code, 1)                                    // refused
	is.True(strings.Contains(errOut, "a daemon serves")) // saying why

	fresh := filepath.Join(t.TempDir(), "restored")
	freshEnv := testbin.Env(fresh, backupRange)
	out, errOut, code = runEnv(t, freshEnv, "restore", file, "--data", fresh)
	if code != 0 {
		t.Fatalf("restore: exit %d: %s", code, errOut)
	}
	is.True(strings.HasPrefix(out, "restored ")) // says what it restored
	_, errOut, code = runEnv(t, freshEnv, "replay", "--verify", "--data", fresh)
	is.Equal(code, 0) // replay --verify accepts the restored ledger
	is.Equal(errOut, "")
	_, errOut, code = runEnv(t, freshEnv, "verify", "--data", fresh)
	is.Equal(code, 0) // and so does verify (the hash chain)
	is.Equal(errOut, "")

	log, err := ledger.Open(ledger.Layout{Dir: fresh}.DB(), ledger.Options{ReadOnly: true})
	is.NoErr(err) // open the restored ledger
	defer log.Close()
	has, err := log.Has(before)
	is.NoErr(err)
	for _, id := range before {
		if !has[id] {
			t.Errorf("event %s, acknowledged before the backup began, is not in the restored ledger", id)
		}
	}
}

func TestRestoreRefusesABadCopyAndAStoppedLedgerWithoutForce(t *testing.T) {
	is := is.New(t)
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.db")
	is.NoErr(os.WriteFile(bad, []byte("not a ledger"), 0o600))
	fresh := filepath.Join(dir, "fresh")
	_, errOut, code := runEnv(t, testbin.Env(fresh, backupRange), "restore", bad, "--data", fresh)
	is.Equal(code, 1)                                               // a copy that does not hold is refused
	is.True(strings.Contains(errOut, "is not a sound ledger copy")) // saying so
	_, err := os.Stat(ledger.Layout{Dir: fresh}.DB())
	is.True(os.IsNotExist(err)) // and nothing is written

	// A stopped ledger is replaced only with --force, and kept aside.
	data := filepath.Join(dir, "data")
	env := testbin.Env(data, backupRange)
	_, errOut, code = runEnv(t, env, "allocate", "--service", "a")
	is.Equal(code, 0)
	good := filepath.Join(dir, "good.db")
	_, errOut, code = runEnv(t, env, "backup", good)
	is.Equal(code, 0) // a backup without a daemon
	_, errOut, code = runEnv(t, env, "restore", good)
	is.Equal(code, 2) // refused without --force
	is.True(strings.Contains(errOut, "pass --force"))
	out, errOut, code := runEnv(t, env, "restore", good, "--force")
	is.Equal(code, 0) // replaced with --force
	is.Equal(errOut, "")
	is.True(strings.Contains(out, "the ledger it replaced is kept as ")) // and the old one kept
}
