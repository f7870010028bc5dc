package projection

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/matryer/is"
)

// TestDayFileLinkIsNotFollowed puts a symbolic link where the day's JSONL
// file goes, pointing at a file of the attacker's choosing: the catch-up
// refuses to append through it, names the link, and the target is
// untouched.
func TestDayFileLinkIsNotFollowed(t *testing.T) {
	is := is.New(t)
	log, layout := mustOpenLog(t)
	victim := filepath.Join(t.TempDir(), "authorized_keys")
	is.NoErr(os.WriteFile(victim, []byte("ssh-ed25519 AAAA precious\n"), 0o600))
	is.NoErr(os.MkdirAll(layout.LogsDir(), 0o700))
	evs := appendBatches(t, log, scenario()[:1], nil)
	link := filepath.Join(layout.LogsDir(), dayFileName(evs[0].At))
	is.NoErr(os.Symlink(victim, link)) // the attacker's link

	files, err := OpenFiles(layout, log)
	if err == nil {
		_, err = files.CatchUp()
		files.Close()
	}
	is.True(err != nil)                                     // the link is refused
	is.True(strings.Contains(err.Error(), "symbolic link")) // and named: %v
	b, err := os.ReadFile(victim)
	is.NoErr(err)
	is.Equal(string(b), "ssh-ed25519 AAAA precious\n") // the target is untouched
}
