package projection

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/matryer/is"
	"github.com/oklog/ulid/v2"
	"github.com/portledger/portledger/ledger"
)

// seedFields are the fields of an allocation in the original
// port_registry.json, plus event_id.
var seedFields = []string{"port", "service_name", "started_by", "purpose", "pid", "allocated_at",
	"health_status", "request_count", "error_count", "event_id"}

func TestRegistryFileShape(t *testing.T) {
	is := is.New(t)
	log, layout := mustOpenLog(t)
	evs := liveFiles(t, log, layout, scenario()[:6]) // three live allocations, 15 November

	b, err := os.ReadFile(layout.Registry())
	is.NoErr(err)                                                                                              // port_registry.json written
	is.True(strings.HasPrefix(string(b), "{\n  \"allocations\": {\n    \"8000\": {\n      \"port\": 8000,\n")) // two-space indent, seed order
	is.True(strings.HasSuffix(string(b), "\n  \"port_range\": \"8000-8100\"\n}\n"))                            // sorted keys, range last

	var f struct {
		Allocations map[string]map[string]any `json:"allocations"`
		LastEventID string                    `json:"last_event_id"`
		PortRange   string                    `json:"port_range"`
	}
	is.NoErr(json.Unmarshal(b, &f))                      // valid JSON
	is.Equal(f.LastEventID, evs[len(evs)-1].ID.String()) // the position it reflects
	is.Equal(f.PortRange, "8000-8100")
	is.Equal(len(f.Allocations), 3) // 8000, 8001, 8002
	for port, a := range f.Allocations {
		for _, k := range seedFields {
			_, ok := a[k]
			is.True(ok) // every seed field is there
		}
		is.Equal(port, jsonNumber(a["port"])) // keyed by port as a string
	}
	a := f.Allocations["8000"]
	is.Equal(a["service_name"], "grace_backend")
	is.Equal(a["pid"], 12346.0)                 // the registered PID
	is.Equal(a["health_status"], "healthy")     // after the health change
	is.Equal(a["request_count"], 120.0)         // the reported stats
	is.Equal(a["error_count"], 3.0)             // the reported stats
	is.Equal(a["event_id"], evs[0].ID.String()) // the allocated event
	is.Equal(a["allocated_at"], "2025-11-15T23:58:30Z")

	// After the whole scenario: 8000 and 8001 released, the range widened.
	appendBatches(t, log, scenario()[6:], nil)
	files, err := OpenFiles(layout, log)
	is.NoErr(err) // reopen
	_, err = files.CatchUp()
	is.NoErr(err) // catch up
	is.NoErr(files.Close())
	b, err = os.ReadFile(layout.Registry())
	is.NoErr(err)
	f.Allocations = nil
	is.NoErr(json.Unmarshal(b, &f))
	is.Equal(f.PortRange, "8000-8200")    // the new range
	is.Equal(len(f.Allocations), 2)       // 8002 and 8003 remain
	is.True(f.Allocations["8000"] == nil) // released
	is.Equal(f.LastEventID, log.LastID().String())
}

func jsonNumber(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestRegistryFileEmptyLog(t *testing.T) {
	is := is.New(t)
	log, layout := mustOpenLog(t)
	files, err := OpenFiles(layout, log)
	is.NoErr(err) // open
	n, err := files.CatchUp()
	is.NoErr(err) // catch up an empty log
	is.Equal(n, 0)
	is.NoErr(files.Close())
	b, err := os.ReadFile(layout.Registry())
	is.NoErr(err) // written even without events
	is.Equal(string(b), "{\n  \"allocations\": {},\n  \"last_event_id\": \"\",\n  \"port_range\": \"8000-8100\"\n}\n")
}

func TestRegistryFileRebuilt(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(path string, evs []ledger.Event) error
	}{
		{"deleted", func(path string, _ []ledger.Event) error { return os.Remove(path) }},
		// What a power loss can leave of a renamed file that was never
		// fsynced: its name, and no data.
		{"empty", func(path string, _ []ledger.Event) error { return os.WriteFile(path, nil, 0o600) }},
		{"not JSON", func(path string, _ []ledger.Event) error {
			return os.WriteFile(path, []byte("{\"allocations\": {"), 0o600)
		}},
		{"not the registry shape", func(path string, _ []ledger.Event) error { return os.WriteFile(path, []byte("[]"), 0o600) }},
		{"last_event_id not in the log", func(path string, evs []ledger.Event) error {
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			last := evs[len(evs)-1].ID
			foreign := ulid.MustNew(last.Time()+1, nil)
			return os.WriteFile(path, []byte(strings.ReplaceAll(string(b), last.String(), foreign.String())), 0o600)
		}},
		{"behind the JSONL files", func(path string, evs []ledger.Event) error {
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			last, older := evs[len(evs)-1].ID, evs[0].ID
			return os.WriteFile(path, []byte(strings.ReplaceAll(string(b), last.String(), older.String())), 0o600)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			log, layout := mustOpenLog(t)
			evs := liveFiles(t, log, layout, scenario())
			want, err := os.ReadFile(layout.Registry())
			is.NoErr(err)                               // written live
			is.NoErr(tt.mutate(layout.Registry(), evs)) // break it
			files, err := OpenFiles(layout, log)
			is.NoErr(err) // open
			n, err := files.CatchUp()
			is.NoErr(err)  // catch up
			is.Equal(n, 0) // the JSONL files were complete
			is.NoErr(files.Close())
			got, err := os.ReadFile(layout.Registry())
			is.NoErr(err)                       // rebuilt
			is.Equal(string(got), string(want)) // as it was
		})
	}
}
