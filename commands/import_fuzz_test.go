package commands_test

import (
	"context"
	"errors"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/portledger/portledger/commands"
	"github.com/portledger/portledger/ledger"
)

// FuzzReadOriginal feeds ReadOriginal hostile versions of the original port
// manager's port_registry.json and one day's JSONL log. It must never panic;
// what it accepts must be events in strictly increasing ID order that
// encode, the same events when the files are read again; importing them
// into a fresh ledger must succeed or refuse with a code other than
// internal, and importing them again must add nothing.
func FuzzReadOriginal(f *testing.F) {
	f.Add([]byte(oldRegistry), []byte(oldLog15))
	f.Add([]byte(oldRegistry), []byte(oldLog16))
	f.Add([]byte(nil), []byte(oldLog15+oldLog16))
	f.Add([]byte(`{"allocations": {"8000": {"port": "8000", "pid": "x"}}}`), []byte(nil))
	f.Add([]byte(`{"8000": {"port": 8000, "service_name": "a", "allocated_at": "2025-11-15 09:00:00.123456"}}`), []byte(nil))
	f.Add([]byte(`[]`), []byte(`{"timestamp": "2025-11-15T09:00:00", "action": "release", "port": 70000}`+"\n"+`not json`+"\n"))
	f.Add([]byte(nil), []byte(`{"timestamp": "9999-12-31T23:59:59Z", "action": "allocate", "port": 8000, "service_name": "future"}`))
	f.Add([]byte(nil), []byte(`{"timestamp": "2025-11-15T09:00:00Z", "action": "stats", "port": 8000, "service_name": "a", "request_count": -1}`))
	// Before it fuzzes on, Go's fuzzer minimizes every input that finds new
	// coverage, for -fuzzminimizetime (default 60s): it tries up to n²
	// smaller candidates of an n-byte input, and the seeds here are about
	// a kilobyte each. At a fraction of a millisecond a run (each import
	// makes a bbolt file), the first two new inputs kept both workers
	// minimizing for the whole of a one-minute run. Unless the command
	// line says otherwise, a few seconds of minimizing will do.
	boundMinimizeTime(f, "3s")
	// One folder and one ledger file per process, rewritten by each run,
	// instead of two temporary folders made and removed per run, and no
	// fsync: no run needs its ledger to survive a crash.
	root := f.TempDir()
	layout := ledger.Layout{Dir: root}
	logPath := filepath.Join(layout.LogsDir(), "allocations_20251115.jsonl")
	dbPath := filepath.Join(f.TempDir(), "ledger.db")
	f.Fuzz(func(t *testing.T, registry, jsonl []byte) {
		place(t, layout.Registry(), registry)
		place(t, logPath, jsonl)
		o, err := commands.ReadOriginal(root)
		if err != nil {
			return
		}
		for i, e := range o.Events {
			if i > 0 && e.ID.Compare(o.Events[i-1].ID) <= 0 {
				t.Fatalf("event %d ID %s not after %s", i, e.ID, o.Events[i-1].ID)
			}
			if _, err := ledger.AppendEncoded(nil, &e); err != nil {
				t.Fatalf("event %d %+v does not encode: %v", i, e, err)
			}
		}
		again, err := commands.ReadOriginal(root)
		if err != nil || !reflect.DeepEqual(again.Events, o.Events) {
			t.Fatalf("reading the same files again differs: %v", err)
		}
		if len(o.Events) == 0 {
			return
		}
		if err := os.Remove(dbPath); err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Fatal(err)
		}
		log, err := ledger.Open(dbPath, ledger.Options{NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		defer log.Close()
		svc, err := commands.New(commands.Config{Log: log, PortFree: func(int) error { return nil }})
		if err != nil {
			t.Fatal(err)
		}
		defer svc.Close()
		// A hung import must fail the input, not stall the fuzzer.
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		res, err := svc.Import(ctx, o.Events)
		if err != nil {
			if ledger.ErrorCode(err) == ledger.EINTERNAL {
				t.Fatalf("import: %v", err)
			}
			return
		}
		if err := log.Check(); err != nil {
			t.Fatal(err)
		}
		res2, err := svc.Import(ctx, o.Events)
		if err != nil || res2.Imported != 0 {
			t.Fatalf("second import: %+v, %v (first %+v)", res2, err, res)
		}
	})
}

// boundMinimizeTime sets -test.fuzzminimizetime to d unless the command
// line set it. The testing package reads it when f.Fuzz starts fuzzing.
func boundMinimizeTime(f *testing.F, d string) {
	f.Helper()
	const name = "test.fuzzminimizetime"
	set := false
	flag.Visit(func(fl *flag.Flag) { set = set || fl.Name == name })
	if set {
		return
	}
	if err := flag.Set(name, d); err != nil {
		f.Fatal(err)
	}
}

// place makes the file at path hold b, or removes it when b is nil, as
// the fuzz target's files are absent or present.
func place(t *testing.T, path string, b []byte) {
	t.Helper()
	if b == nil {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Fatal(err)
		}
		return
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
