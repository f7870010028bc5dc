package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/portledger/portledger/httpapi"
)

// A user has one ledger, whatever the shell: a daemon announces the data
// directory it serves in a per-user runtime directory, so that a command run
// from a shell with another (or no) LEDGER_DATA finds it instead of quietly
// opening a second, empty ledger.

// announcement is what `ledger serve` writes in the runtime directory, one
// file per daemon: daemon-PID.json.
type announcement struct {
	PID     int       `json:"pid"`
	Data    string    `json:"data"`   // the data directory, absolute
	Socket  string    `json:"socket"` // its unix socket
	Addr    string    `json:"addr,omitempty"`
	Started time.Time `json:"started"`
}

// runtimeDir returns the per-user directory where daemons announce
// themselves: $XDG_RUNTIME_DIR/portledger, else /tmp/portledger-UID.
func runtimeDir(getenv func(string) string) string {
	if d := getenv("XDG_RUNTIME_DIR"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "portledger")
	}
	if uid := os.Getuid(); uid >= 0 {
		return filepath.Join(os.TempDir(), "portledger-"+strconv.Itoa(uid))
	}
	// Windows has no uid (Getuid is -1); its temporary directory is the
	// user's own (%TEMP%).
	return filepath.Join(os.TempDir(), "portledger")
}

// privateDir makes dir (mode 0700) if needed and checks that it belongs to
// this user and that nobody else can write in it: a file another user
// planted there must not steer our commands to their daemon.
func privateDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	return checkPrivate(dir)
}

// checkPrivate checks that dir is a directory of this user that nobody
// else can write in.
func checkPrivate(dir string) error {
	info, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	if !info.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	if uid, ok := fileUID(info); ok && uid != os.Getuid() {
		return fmt.Errorf("%s belongs to uid %d, not to us", dir, uid)
	}
	if permBits && info.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("%s can be written by others (mode %v)", dir, info.Mode().Perm())
	}
	return nil
}

// announce writes a's file in dir and returns the function that removes it.
func announce(dir string, a announcement) (func(), error) {
	if err := privateDir(dir); err != nil {
		return nil, err
	}
	body, err := json.MarshalIndent(a, "", "  ")
	if err != nil {
		return nil, err
	}
	name := filepath.Join(dir, fmt.Sprintf("daemon-%d.json", a.PID))
	tmp := name + ".tmp"
	if err := os.WriteFile(tmp, append(body, '\n'), 0o600); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, name); err != nil {
		os.Remove(tmp)
		return nil, err
	}
	return func() { os.Remove(name) }, nil
}

// liveDaemons returns the daemons of this user that answer on their socket,
// by data directory. Files of daemons whose process is gone are removed.
func liveDaemons(ctx context.Context, dir, token string) []announcement {
	if checkPrivate(dir) != nil {
		return nil
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var live []announcement
	for _, ent := range entries {
		name := ent.Name()
		if !strings.HasPrefix(name, "daemon-") || !strings.HasSuffix(name, ".json") || !ent.Type().IsRegular() {
			continue
		}
		path := filepath.Join(dir, name)
		body, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		var a announcement
		if json.Unmarshal(body, &a) != nil || a.PID <= 0 || a.Socket == "" {
			continue
		}
		if processGone(a.PID) {
			os.Remove(path) // a daemon that was killed
			continue
		}
		pid, err := httpapi.NewSocketClient(a.Socket, token).DaemonPID(ctx)
		if err != nil || pid != a.PID {
			continue // starting, stopping, or the socket is another's now
		}
		live = append(live, a)
	}
	sort.Slice(live, func(i, j int) bool { return live[i].Data < live[j].Data })
	return live
}

// others returns the live daemons that serve a data directory other than
// data.
func others(live []announcement, data string) []announcement {
	abs := absDir(data)
	var out []announcement
	for _, a := range live {
		if a.Data != abs {
			out = append(out, a)
		}
	}
	return out
}

// absDir returns dir as an absolute, cleaned path with its links resolved
// where it exists, so that two spellings of one directory compare equal.
func absDir(dir string) string {
	if a, err := filepath.Abs(dir); err == nil {
		dir = a
	}
	if r, err := filepath.EvalSymlinks(dir); err == nil {
		dir = r
	} else if !errors.Is(err, fs.ErrNotExist) {
		return filepath.Clean(dir)
	}
	return dir
}

// absPath returns path made absolute.
func absPath(path string) string {
	if a, err := filepath.Abs(path); err == nil {
		return a
	}
	return path
}

// describeDaemons names the daemons of live for a message.
func describeDaemons(live []announcement) string {
	parts := make([]string, len(live))
	for i, a := range live {
		parts[i] = fmt.Sprintf("pid %d serves %s", a.PID, a.Data)
	}
	return strings.Join(parts, "; ")
}
