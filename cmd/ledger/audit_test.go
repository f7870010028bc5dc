package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/matryer/is"
	"github.com/portledger/portledger/ledger"
	"github.com/portledger/portledger/watchdog"
)

// runCLI runs one ledger command in this process and returns its output.
func runCLI(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := Run(context.Background(), args, testEnv(t), strings.NewReader(""), &out, &errOut)
	return out.String(), errOut.String(), err
}

func TestAuditCommands(t *testing.T) {
	is := is.New(t)
	data := t.TempDir()
	root := t.TempDir()
	logs := ledger.Layout{Dir: root}.LogsDir()
	is.NoErr(os.MkdirAll(logs, 0o700))
	is.NoErr(os.WriteFile(filepath.Join(logs, "allocations_20251115.jsonl"), []byte(
		`{"timestamp": "2025-11-15T14:30:00Z", "action": "allocate", "port": 8000, "service_name": "grace_backend", "started_by": "serve.py", "purpose": "Main Grace API server"}
{"timestamp": "2025-11-15T14:30:05Z", "action": "register_pid", "port": 8000, "pid": 12345}
{"timestamp": "2025-11-15T15:00:00Z", "action": "allocate", "port": 8001,
{"timestamp": "2025-11-15T16:30:00Z", "action": "release", "port": 8000, "reason": "shutdown", "duration_s": 7200}
`), 0o600))

	out, _, err := runCLI(t, "import", "--from", root, "--data", data)
	is.NoErr(err)                                                   // import
	is.True(strings.Contains(out, "3 imported"))                    // three events
	is.True(strings.Contains(out, "allocations_20251115.jsonl:3:")) // the malformed line, by file and line
	// The projections were rebuilt with the past.
	day, err := os.ReadFile(filepath.Join(ledger.Layout{Dir: data}.LogsDir(), "allocations_20251115.jsonl"))
	is.NoErr(err)                               // the day file of the imported events exists
	is.Equal(bytes.Count(day, []byte("\n")), 3) // one line per event
	is.True(bytes.Contains(day, []byte(`"imported_from"`)))

	out, _, err = runCLI(t, "import", "--from", root, "--data", data)
	is.NoErr(err)
	is.True(strings.Contains(out, "0 imported, 3 already in the ledger")) // nothing twice

	out, _, err = runCLI(t, "who", "8000", "--at", "2025-11-15T15:00:00Z", "--data", data)
	is.NoErr(err)                                           // who
	is.True(strings.Contains(out, "held by grace_backend")) // the holder then
	is.True(strings.Contains(out, "12345"))                 // its pid
	is.True(strings.Contains(out, "shutdown"))              // and why it was released
	out, _, err = runCLI(t, "who", "8000", "--at", "2025-11-15T17:00:00Z", "--data", data)
	is.NoErr(err)
	is.True(strings.Contains(out, "free"))                              // free after the release
	is.True(strings.Contains(out, "Held last before by grace_backend")) // and who held it

	out, _, err = runCLI(t, "status", "--at", "2025-11-15T15:00:00Z", "--data", data)
	is.NoErr(err)
	is.True(strings.Contains(out, "grace_backend")) // the registry then
	out, _, err = runCLI(t, "status", "--at", "2001-01-01", "--data", data)
	is.NoErr(err)
	is.True(strings.Contains(out, "before the first event")) // says the ledger was empty
	out, _, err = runCLI(t, "status", "--at", "2001-01-01", "--json", "--data", data)
	is.NoErr(err)
	is.True(!strings.Contains(out, `"as_of"`)) // no as_of before the first event

	out, _, err = runCLI(t, "usage", "--since", "2025-11-01", "--until", "2025-12-01", "--json", "--data", data)
	is.NoErr(err)
	var u struct {
		Usage []ledger.ServiceUsage `json:"usage"`
	}
	is.NoErr(json.Unmarshal([]byte(out), &u))
	is.Equal(len(u.Usage), 1)
	is.Equal(u.Usage[0].Service, "grace_backend")
	is.Equal(u.Usage[0].Releases, map[string]int{"shutdown": 1})
	is.Equal(float64(u.Usage[0].TotalHold)/1e9, 7200.0) // two hours

	out, _, err = runCLI(t, "history", "--service", "grace_backend", "--since", "2025-11-01", "--until", "2025-12-01", "--json", "--data", data)
	is.NoErr(err)
	var h struct {
		Events []ledger.Event `json:"events"`
	}
	is.NoErr(json.Unmarshal([]byte(out), &h))
	is.Equal(len(h.Events), 3) // allocate, pid, release

	_, _, err = runCLI(t, "who", "8000", "--at", "2999-01-01", "--data", data)
	is.True(err != nil) // the future is refused
	is.Equal(report(err, &bytes.Buffer{}), 2)
	_, _, err = runCLI(t, "import", "--data", data)
	is.Equal(report(err, &bytes.Buffer{}), 2) // --from is required
}

func TestImportThroughTheDaemon(t *testing.T) {
	is := is.New(t)
	data := t.TempDir()
	root := t.TempDir()
	logs := ledger.Layout{Dir: root}.LogsDir()
	is.NoErr(os.MkdirAll(logs, 0o700))
	is.NoErr(os.WriteFile(filepath.Join(logs, "allocations_20251115.jsonl"), []byte(
		`{"timestamp": "2025-11-15T14:30:00Z", "action": "allocate", "port": 8000, "service_name": "grace_backend", "started_by": "serve.py", "purpose": "Main Grace API server"}
{"timestamp": "2025-11-15T16:30:00Z", "action": "release", "port": 8000, "reason": "shutdown"}
`), 0o600))
	d, err := startDaemon(context.Background(), daemonConfig{Data: data, Security: security{WriteGroup: -1}, Watchdog: watchdog.Options{Interval: time.Hour}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	is.NoErr(err) // start the daemon
	defer d.shutdown()

	out, _, err := runCLI(t, "import", "--from", root, "--data", data)
	is.NoErr(err) // import through the daemon's socket
	is.True(strings.Contains(out, "2 imported"))
	// The daemon rebuilt its files with the past.
	day, err := os.ReadFile(filepath.Join(ledger.Layout{Dir: data}.LogsDir(), "allocations_20251115.jsonl"))
	is.NoErr(err)
	is.Equal(bytes.Count(day, []byte("\n")), 2)
	out, _, err = runCLI(t, "who", "8000", "--at", "2025-11-15T15:00:00Z", "--data", data)
	is.NoErr(err)
	is.True(strings.Contains(out, "held by grace_backend")) // answered by the daemon
}
