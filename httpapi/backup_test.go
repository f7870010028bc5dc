package httpapi

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/matryer/is"
	"github.com/oklog/ulid/v2"
	"github.com/portledger/portledger/ledger"
)

func TestBackupNeedsTheTokenAndCopiesTheLedger(t *testing.T) {
	is := is.New(t)
	e := newEnv(t)
	a := e.allocate(t, "grace_backend")
	srv := httptest.NewServer(NewServer(Config{Service: e.svc, Token: "s3cret", Backup: e.log}))
	defer srv.Close()

	resp, err := http.Get(srv.URL + "/api/backup")
	is.NoErr(err)
	resp.Body.Close()
	is.Equal(resp.StatusCode, http.StatusUnauthorized) // no token, no copy

	cl := NewClient(srv.URL, "s3cret")
	file := filepath.Join(t.TempDir(), "copy.db")
	f, err := os.Create(file)
	is.NoErr(err)
	n, err := cl.Backup(context.Background(), f)
	is.NoErr(err) // the copy arrives
	is.NoErr(f.Close())
	fi, err := os.Stat(file)
	is.NoErr(err)
	is.Equal(fi.Size(), n) // whole

	copied, err := ledger.Open(file, ledger.Options{ReadOnly: true})
	is.NoErr(err) // a ledger file
	defer copied.Close()
	is.NoErr(copied.Check())                  // that bbolt's check accepts
	is.Equal(copied.LastID(), e.log.LastID()) // holding every event
	has, err := copied.Has([]ulid.ULID{a.EventID})
	is.NoErr(err)
	is.True(has[a.EventID]) // the allocation among them

	noBackup := httptest.NewServer(NewServer(Config{Service: e.svc, Token: "s3cret"}))
	defer noBackup.Close()
	_, err = NewClient(noBackup.URL, "s3cret").Backup(context.Background(), io.Discard)
	is.Equal(ledger.ErrorCode(err), ledger.EUNAVAILABLE) // a server without a file says so
}
