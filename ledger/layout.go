package ledger

import (
	"path/filepath"
	"runtime"
)

// Layout names the files under a data directory. The paths keep the original
// port manager's, so existing tools still find port_registry.json and the
// daily allocation logs.
type Layout struct {
	Dir string
}

// DB returns the path of the bbolt event log.
func (l Layout) DB() string { return filepath.Join(l.Dir, "databases", "port_ledger", "ledger.db") }

// Registry returns the path of port_registry.json.
func (l Layout) Registry() string {
	return filepath.Join(l.Dir, "databases", "port_registry", "port_registry.json")
}

// LogsDir returns the folder of the daily JSONL logs.
func (l Layout) LogsDir() string { return filepath.Join(l.Dir, "logs", "port_manager") }

// Token returns the path of the daemon's bearer token for TCP (mode 0600,
// made at the daemon's first start).
func (l Layout) Token() string { return filepath.Join(l.Dir, "token") }

// Socket returns the path of the daemon's unix socket.
func (l Layout) Socket() string { return filepath.Join(l.Dir, "ledger.sock") }

// DefaultDataDir returns $LEDGER_DATA, else the platform's place for a
// program's own data (see DataDirFor), reading the environment through
// getenv (os.Getenv in the binary), so that the domain never reads the
// process's environment itself.
func DefaultDataDir(getenv func(string) string) string {
	return DataDirFor(runtime.GOOS, getenv)
}

// DataDirFor is DefaultDataDir on the system goos: $LEDGER_DATA, else
//   - windows: %LOCALAPPDATA%\portledger
//   - darwin: $HOME/Library/Application Support/portledger
//   - others: $XDG_STATE_HOME/portledger, else $HOME/.local/state/portledger
//
// and "portledger" (in the working directory) when the variables it needs
// are unset. It is one function for every system so that each one's rule is
// tested on any of them.
func DataDirFor(goos string, getenv func(string) string) string {
	if d := getenv("LEDGER_DATA"); d != "" {
		return d
	}
	switch goos {
	case "windows":
		if d := getenv("LOCALAPPDATA"); d != "" {
			return filepath.Join(d, "portledger")
		}
	case "darwin", "ios":
		if h := getenv("HOME"); h != "" {
			return filepath.Join(h, "Library", "Application Support", "portledger")
		}
	default:
		if d := getenv("XDG_STATE_HOME"); d != "" {
			return filepath.Join(d, "portledger")
		}
		if h := getenv("HOME"); h != "" {
			return filepath.Join(h, ".local", "state", "portledger")
		}
	}
	return "portledger"
}
