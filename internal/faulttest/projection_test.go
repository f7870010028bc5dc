package faulttest

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/matryer/is"
	"github.com/portledger/portledger/ledger"
)

// TestDamagedProjectionsRebuiltOnStart damages port_registry.json and the
// JSONL log while no daemon runs. `ledger serve` rebuilds them from the log
// at start, byte for byte as they were, and never rewrites the log from
// them: the log's events are the same before and after.
func TestDamagedProjectionsRebuiltOnStart(t *testing.T) {
	t.Parallel() // its own data directories; it mounts nothing
	data := t.TempDir()
	seedLedger(t, data)
	layout := ledger.Layout{Dir: data}
	day := filepath.Join(layout.LogsDir(), "allocations_"+time.Now().UTC().Format("20060102")+".jsonl")
	wantReg, err := os.ReadFile(layout.Registry())
	if err != nil {
		t.Fatal(err)
	}
	wantDay, err := os.ReadFile(day)
	if err != nil {
		t.Fatal(err)
	}
	events := run(t, data, "history", "--json").out

	tests := []struct {
		name   string
		damage func() error
	}{
		{"registry deleted", func() error { return os.Remove(layout.Registry()) }},
		{"registry not JSON", func() error { return os.WriteFile(layout.Registry(), []byte("{\"allocations\": {\"435"), 0o600) }},
		{"registry emptied", func() error { return os.WriteFile(layout.Registry(), nil, 0o600) }},
		{"registry of another ledger", func() error {
			return os.WriteFile(layout.Registry(), []byte(`{"allocations": {}, "last_event_id": "01JCZ6Y0000000000000000000", "port_range": "8000-8100"}`+"\n"), 0o600)
		}},
		{"JSONL deleted", func() error { return os.Remove(day) }},
		{"JSONL last line cut", func() error { return os.WriteFile(day, wantDay[:len(wantDay)-20], 0o600) }},
		{"JSONL garbage line appended", func() error {
			return os.WriteFile(day, append(append([]byte(nil), wantDay...), "not json\n"...), 0o600)
		}},
		{"JSONL emptied", func() error { return os.WriteFile(day, nil, 0o600) }},
		{"logs folder deleted", func() error { return os.RemoveAll(layout.LogsDir()) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			is.NoErr(tt.damage())
			d := startDaemon(t, data)
			waitFor(t, "projections rebuilt", func() bool {
				reg, err1 := os.ReadFile(layout.Registry())
				got, err2 := os.ReadFile(day)
				return err1 == nil && err2 == nil && string(reg) == string(wantReg) && string(got) == string(wantDay)
			})
			d.stop(t)
			is.Equal(run(t, data, "history", "--json").out, events) // the log is unchanged
			is.Equal(run(t, data, "replay", "--verify").code, 0)    // and the files equal a replay
		})
	}
}
