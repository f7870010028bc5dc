package ledger_test

import (
	"github.com/portledger/portledger/internal/ledgertest"
	"path/filepath"
	"testing"

	"github.com/matryer/is"
	"github.com/oklog/ulid/v2"
	"github.com/portledger/portledger/ledger"
)

func TestPositionSurvivesReopen(t *testing.T) {
	is := is.New(t)
	path := filepath.Join(t.TempDir(), "ledger.db")
	l, err := ledger.Open(path, ledger.Options{})
	is.NoErr(err) // open
	got, err := l.Position("fleet")
	is.NoErr(err)
	is.Equal(got, ulid.ULID{}) // no position yet: zero
	id := ulid.Make()
	is.NoErr(l.SetPosition("fleet", id))
	is.NoErr(l.SetPosition("other", ulid.Make()))
	is.NoErr(l.Close())

	l = ledgertest.MustOpenLogAt(t, path, ledger.Options{})
	got, err = l.Position("fleet")
	is.NoErr(err)
	is.Equal(got, id)                                                  // the position is kept in the file, apart from others
	is.Equal(ledger.ErrorCode(l.SetPosition("", id)), ledger.EINVALID) // a position needs a name
}
