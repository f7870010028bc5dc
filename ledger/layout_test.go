package ledger

import (
	"path/filepath"
	"runtime"
	"testing"

	"github.com/matryer/is"
)

func TestDataDirFor(t *testing.T) {
	t.Parallel()
	all := map[string]string{"LEDGER_DATA": "/d", "XDG_STATE_HOME": "/x", "HOME": "/h", "LOCALAPPDATA": `C:\Users\u\AppData\Local`}
	for _, tt := range []struct {
		name string
		goos string
		env  map[string]string
		want string
	}{
		{"LEDGER_DATA wins on linux", "linux", all, "/d"},
		{"LEDGER_DATA wins on darwin", "darwin", all, "/d"},
		{"LEDGER_DATA wins on windows", "windows", all, "/d"},
		{"XDG state home", "linux", map[string]string{"XDG_STATE_HOME": "/x", "HOME": "/h"}, filepath.Join("/x", "portledger")},
		{"home", "linux", map[string]string{"HOME": "/h"}, filepath.Join("/h", ".local", "state", "portledger")},
		{"freebsd as linux", "freebsd", map[string]string{"HOME": "/h"}, filepath.Join("/h", ".local", "state", "portledger")},
		{"macOS application support", "darwin", map[string]string{"XDG_STATE_HOME": "/x", "HOME": "/Users/u"}, filepath.Join("/Users/u", "Library", "Application Support", "portledger")},
		{"windows local app data", "windows", map[string]string{"HOME": "/h", "LOCALAPPDATA": `C:\Users\u\AppData\Local`}, filepath.Join(`C:\Users\u\AppData\Local`, "portledger")},
		{"nothing set", "linux", map[string]string{}, "portledger"},
		{"nothing set on darwin", "darwin", map[string]string{}, "portledger"},
		{"nothing set on windows", "windows", map[string]string{"HOME": "/h"}, "portledger"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			got := DataDirFor(tt.goos, func(k string) string { return tt.env[k] })
			is.Equal(got, tt.want) // data directory
		})
	}
}

func TestDefaultDataDirIsThisSystems(t *testing.T) {
	is := is.New(t)
	env := map[string]string{"HOME": "/h", "XDG_STATE_HOME": "/x", "LOCALAPPDATA": "/l"}
	get := func(k string) string { return env[k] }
	is.Equal(DefaultDataDir(get), DataDirFor(runtime.GOOS, get)) // DefaultDataDir follows the running system's rule
}
