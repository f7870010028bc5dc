package ledger_test

import (
	"errors"
	"github.com/portledger/portledger/internal/ledgertest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/matryer/is"
	"github.com/oklog/ulid/v2"
	"github.com/portledger/portledger/ledger"
)

// fillForCompact writes enough events through small port-index tails that
// the tail's merges leave free pages behind in the file.
func fillForCompact(tb testing.TB, path string) []ledger.Event {
	tb.Helper()
	clock := ledgertest.NewClock(time.Date(2025, 11, 15, 14, 30, 0, 0, time.UTC), 0)
	l, err := ledger.Open(path, ledger.Options{Now: clock.Now, PortIndexTail: 64, NoSync: true})
	if err != nil {
		tb.Fatalf("open: %v", err)
	}
	defer l.Close()
	for i := range 300 {
		batch := make([]ledger.Event, 20)
		for j := range batch {
			batch[j] = stats(8000+(i*20+j)%101, int64(i*20+j))
		}
		mustAppend(tb, l, batch...)
		clock.Add(time.Second)
	}
	return scanAll(tb, l, ulid.ULID{}, ulid.ULID{})
}

func TestCompactKeepsEveryAnswerAndGivesSpaceBack(t *testing.T) {
	is := is.New(t)
	path := filepath.Join(t.TempDir(), "ledger.db")
	before := fillForCompact(t, path)
	keep := path + ".before"

	res, err := ledger.Compact(path, time.Second, keep)
	is.NoErr(err)                             // compact
	is.True(res.BytesAfter < res.BytesBefore) // space given back
	is.True(res.Keys > int64(len(before)))    // events and index entries checked
	is.Equal(res.Kept, keep)                  // the original kept where asked
	_, err = os.Stat(path + ".compact")
	is.True(errors.Is(err, os.ErrNotExist)) // no temp file left

	l := ledgertest.MustOpenLogAt(t, path, ledger.Options{})
	after := scanAll(t, l, ulid.ULID{}, ulid.ULID{})
	is.Equal(len(after), len(before)) // same number of events
	for i := range before {
		is.Equal(after[i], before[i]) // same event
	}
	for _, port := range []int{8000, 8050, 8100} {
		var want []ledger.Event
		for _, e := range before {
			if e.Port == port {
				want = append(want, e)
			}
		}
		is.Equal(scanPort(t, l, port, ulid.ULID{}, ulid.ULID{}), want) // same port index
	}
	n, err := l.Count()
	is.NoErr(err)                    // count
	is.Equal(n, uint64(len(before))) // same count in meta
	mustAppend(t, l, stats(8000, 1)) // the compacted log takes writes
}

func TestCompactRefusesALogInUse(t *testing.T) {
	is := is.New(t)
	path := filepath.Join(t.TempDir(), "ledger.db")
	fillForCompact(t, path)
	l := ledgertest.MustOpenLogAt(t, path, ledger.Options{})
	info0, err := os.Stat(path)
	is.NoErr(err) // stat

	_, err = ledger.Compact(path, 100*time.Millisecond, "")
	is.True(errors.Is(err, ledger.ErrLocked)) // held by another: refused
	info1, err := os.Stat(path)
	is.NoErr(err)                      // stat
	is.True(os.SameFile(info0, info1)) // the file was not replaced
	mustAppend(t, l, stats(8000, 1))   // and is still the one in use
}

func TestCompactRefusesWhatIsNotALedger(t *testing.T) {
	is := is.New(t)
	path := filepath.Join(t.TempDir(), "ledger.db")
	is.NoErr(os.WriteFile(path, []byte("not a ledger at all, just some bytes"), 0o600)) // write junk
	_, err := ledger.Compact(path, time.Second, "")
	is.True(errors.Is(err, ledger.ErrCorrupt)) // refused as corrupt
	b, err := os.ReadFile(path)
	is.NoErr(err)                                               // read back
	is.Equal(string(b), "not a ledger at all, just some bytes") // untouched
}

// A process that waited for the lock while the file was replaced under it
// opens the new file, never the old one nobody will read again.
func TestOpenAfterTheFileWasReplacedUnderTheLock(t *testing.T) {
	is := is.New(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "ledger.db")
	other := filepath.Join(dir, "other.db")
	fillForCompact(t, other)

	holder, err := ledger.Open(path, ledger.Options{})
	is.NoErr(err) // the first process holds the file
	mustAppend(t, holder, stats(8000, 1))

	opened := make(chan *ledger.Log, 1)
	errc := make(chan error, 1)
	go func() {
		l, err := ledger.Open(path, ledger.Options{Timeout: 10 * time.Second})
		if err != nil {
			errc <- err
			return
		}
		opened <- l
	}()
	time.Sleep(200 * time.Millisecond) // let the second Open wait on the lock
	is.NoErr(os.Rename(other, path))   // a new file takes the name
	is.NoErr(holder.Close())           // and the old file's lock is let go

	select {
	case err := <-errc:
		t.Fatalf("open: %v", err)
	case l := <-opened:
		defer l.Close()
		n, err := l.Count()
		is.NoErr(err)             // count
		is.Equal(n, uint64(6000)) // the new file's events, not the old file's one
	case <-time.After(15 * time.Second):
		t.Fatal("open did not return")
	}
}
