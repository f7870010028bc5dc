package faulttest

import (
	"os"
	"testing"

	"github.com/portledger/portledger/ledger"
)

// TestFileModes checks the modes a fresh data directory gets, whether the
// daemon or an embedded CLI call creates it: the directory and the
// ledger's folders 0700, ledger.db and the projection files 0600, the
// socket 0600.
func TestFileModes(t *testing.T) {
	check := func(t *testing.T, data string, withSocket bool) {
		t.Helper()
		layout := ledger.Layout{Dir: data}
		want := map[string]os.FileMode{
			data:              0o700 | os.ModeDir,
			layout.DB():       0o600,
			layout.Registry(): 0o600,
			layout.LogsDir():  0o700 | os.ModeDir,
		}
		if withSocket {
			want[layout.Socket()] = 0o600 | os.ModeSocket
			want[layout.Token()] = 0o600
		}
		for path, mode := range want {
			info, err := os.Stat(path)
			if err != nil {
				t.Errorf("%s: %v", path, err)
				continue
			}
			if got := info.Mode() & (os.ModePerm | os.ModeDir | os.ModeSocket); got != mode {
				t.Errorf("%s: mode %v, want %v", path, got, mode)
			}
		}
		// Every folder the ledger made is private.
		for _, dir := range []string{layout.Dir + "/databases", layout.Dir + "/databases/port_ledger", layout.Dir + "/databases/port_registry", layout.Dir + "/logs"} {
			if info, err := os.Stat(dir); err == nil && info.Mode().Perm() != 0o700 {
				t.Errorf("%s: mode %v, want 0700", dir, info.Mode().Perm())
			}
		}
	}
	t.Run("serve", func(t *testing.T) {
		data := t.TempDir() + "/fresh"
		d := startDaemon(t, data)
		if r := run(t, data, "allocate", "--service", "modes"); r.code != 0 {
			t.Fatalf("allocate: %s", r.err)
		}
		waitFor(t, "port_registry.json written", func() bool {
			_, err := os.Stat(ledger.Layout{Dir: data}.Registry())
			return err == nil
		})
		check(t, data, true)
		d.stop(t)
	})
	t.Run("embedded", func(t *testing.T) {
		data := t.TempDir() + "/fresh"
		if r := run(t, data, "allocate", "--service", "modes"); r.code != 0 {
			t.Fatalf("allocate: %s", r.err)
		}
		check(t, data, false)
	})
}
