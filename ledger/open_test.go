package ledger_test

import (
	"bytes"
	"errors"
	"github.com/portledger/portledger/internal/ledgertest"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/matryer/is"
	"github.com/portledger/portledger/ledger"
)

func TestOpenRefusesAFileHeldByAnotherOpen(t *testing.T) {
	is := is.New(t)
	path := filepath.Join(t.TempDir(), "ledger.db")
	holder := ledgertest.MustOpenLogAt(t, path, ledger.Options{})
	mustAppend(t, holder, stats(8000, 1))

	// bbolt's flock belongs to the open file description, so a second open
	// in this same process conflicts just as another process would.
	done := make(chan error, 1)
	go func() {
		l, err := ledger.Open(path, ledger.Options{Timeout: 200 * time.Millisecond})
		if err == nil {
			_ = l.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		is.True(err != nil)                       // the second open fails
		is.True(errors.Is(err, ledger.ErrLocked)) // with ErrLocked
	case <-time.After(time.Minute):
		t.Fatal("a second open of a held file hangs")
	}

	mustAppend(t, holder, stats(8000, 2)) // the holder is unaffected
	n, err := holder.Count()
	is.NoErr(err)          // count
	is.Equal(n, uint64(2)) // both appends are there
}

func TestOpenAfterCloseSucceeds(t *testing.T) {
	is := is.New(t)
	path := filepath.Join(t.TempDir(), "ledger.db")
	l, err := ledger.Open(path, ledger.Options{})
	is.NoErr(err) // first open
	is.NoErr(l.Close())
	l = ledgertest.MustOpenLogAt(t, path, ledger.Options{Timeout: 200 * time.Millisecond})
	is.True(l != nil) // the lock is released on Close
}

// validLedger returns the bytes of a small, valid ledger file.
func validLedger(t *testing.T) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "valid.db")
	l, err := ledger.Open(path, ledger.Options{})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	for i := range 200 {
		mustAppend(t, l, append(sampleEvents(), stats(8000+i%50, int64(i)))...)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return b
}

func TestOpenRefusesCorruptFiles(t *testing.T) {
	valid := validLedger(t)
	random := make([]byte, 64<<10)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range random {
		random[i] = byte(r.Uint32())
	}
	// A valid file whose two meta pages are overwritten.
	badMeta := bytes.Clone(valid)
	for i := 16; i < 8192; i++ {
		badMeta[i] ^= 0x5A
	}
	tests := []struct {
		name string
		data []byte
	}{
		{"random bytes", random},
		{"a few random bytes", random[:100]},
		{"text", []byte("port,service\n8000,api\n")},
		{"truncated to one page", valid[:4096]},
		{"truncated after the meta pages", valid[:8192]},
		{"truncated in the middle", valid[:len(valid)/2]},
		{"meta pages overwritten", badMeta},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			path := filepath.Join(t.TempDir(), "ledger.db")
			is.NoErr(os.WriteFile(path, tt.data, 0o600)) // write the bad file
			l, err := ledger.Open(path, ledger.Options{Timeout: time.Second})
			if err == nil {
				_ = l.Close()
			}
			is.True(err != nil)                        // a corrupt file is refused
			is.True(errors.Is(err, ledger.ErrCorrupt)) // with ErrCorrupt
			after, err := os.ReadFile(path)
			is.NoErr(err)                        // read the file back
			is.True(bytes.Equal(after, tt.data)) // the file is left as it was
		})
	}
}
