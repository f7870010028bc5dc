//go:build unix

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/matryer/is"
	"github.com/portledger/portledger/ledger"
)

// TestDataSubdirectoriesAreChecked: a link or a writable folder left inside
// a data directory (while it was open to others, say) is refused like the
// data directory itself, before anything is written through it.
func TestDataSubdirectoriesAreChecked(t *testing.T) {
	t.Parallel() // its own data directories; it binds no port
	tests := []struct {
		name  string
		setup func(t *testing.T, data, elsewhere string)
		want  string // a word of the refusal
	}{
		{"the day files' folder is a link", func(t *testing.T, data, elsewhere string) {
			is := is.New(t)
			is.NoErr(os.MkdirAll(filepath.Join(data, "logs"), 0o700))
			is.NoErr(os.Symlink(elsewhere, ledger.Layout{Dir: data}.LogsDir()))
		}, "symbolic link"},
		{"the log's folder is a link", func(t *testing.T, data, elsewhere string) {
			is := is.New(t)
			is.NoErr(os.MkdirAll(filepath.Join(data, "databases"), 0o700))
			is.NoErr(os.Symlink(elsewhere, filepath.Dir(ledger.Layout{Dir: data}.DB())))
		}, "symbolic link"},
		{"the registry's folder may be written by others", func(t *testing.T, data, elsewhere string) {
			is := is.New(t)
			dir := filepath.Dir(ledger.Layout{Dir: data}.Registry())
			is.NoErr(os.MkdirAll(dir, 0o700))
			is.NoErr(os.Chmod(dir, 0o777))
		}, "chmod 700"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			data, elsewhere := t.TempDir(), t.TempDir()
			tt.setup(t, data, elsewhere)
			_, _, err := runCLI(t, "allocate", "--service", "api", "--data", data)
			is.True(err != nil)                             // refused
			is.True(strings.Contains(err.Error(), tt.want)) // saying why: %v
			left, err := os.ReadDir(elsewhere)
			is.NoErr(err)
			is.Equal(len(left), 0) // nothing was written through the link
		})
	}
	t.Run("the folders the ledger made pass", func(t *testing.T) {
		is := is.New(t)
		data := t.TempDir()
		_, _, err := runCLI(t, "allocate", "--service", "api", "--data", data)
		is.NoErr(err) // the first run makes them
		_, _, err = runCLI(t, "allocate", "--service", "web", "--data", data)
		is.NoErr(err) // and the next one accepts them
	})
}
