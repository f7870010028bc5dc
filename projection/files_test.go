package projection

import (
	"bytes"
	"github.com/portledger/portledger/internal/ledgertest"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/matryer/is"
	"github.com/oklog/ulid/v2"
	"github.com/portledger/portledger/ledger"
)

// scenarioStart is the time of the first append: the scenario's batches are
// 15 s apart, so the first six fall on 2025-11-15 and the rest on the 16th.
var scenarioStart = time.Date(2025, 11, 15, 23, 58, 30, 0, time.UTC)

// mustOpenLog opens a log under a fresh data directory with a stepped
// clock, and checks and closes it when the test ends.
func mustOpenLog(tb testing.TB) (*ledger.Log, ledger.Layout) {
	tb.Helper()
	layout := ledger.Layout{Dir: tb.TempDir()}
	clock := ledgertest.NewClock(scenarioStart, 15*time.Second)
	return ledgertest.MustOpenLogAt(tb, layout.DB(), ledger.Options{Now: clock.Now}), layout
}

// scenario returns batches of events of every type, one Append each.
func scenario() [][]ledger.Event {
	return [][]ledger.Event{
		{{Type: ledger.EventAllocated, Port: 8000, Allocated: &ledger.Allocated{
			ServiceName: "grace_backend", StartedBy: "serve.py", Purpose: "Main Grace API server",
			PID: 12345, PIDStarted: 1763217000000, HealthURL: "http://127.0.0.1:8000/health"}}},
		{{Type: ledger.EventPIDRegistered, Port: 8000, PIDRegistered: &ledger.PIDRegistered{
			PID: 12346, PIDStarted: 1763217001000, Cmdline: "python serve.py --name \"grace\"\t--debug"}}},
		{
			{Type: ledger.EventHealthChanged, Port: 8000, HealthChanged: &ledger.HealthChanged{
				From: ledger.HealthStarting, To: ledger.HealthHealthy, Reason: "listening", Alive: true, Listening: true, Endpoint: "ok"}},
			{Type: ledger.EventAllocated, Port: 8001, Allocated: &ledger.Allocated{
				ServiceName: "learning", StartedBy: "serve.py", Purpose: "Learning-only"}},
		},
		{{Type: ledger.EventStatsReported, Port: 8000, StatsReported: &ledger.StatsReported{RequestCount: 120, ErrorCount: 3}}},
		{{Type: ledger.EventConflictDetected, Port: 8050, Conflict: &ledger.ConflictDetected{PID: 999, Command: "nc -l 8050"}}},
		{{Type: ledger.EventAllocated, Port: 8002, Allocated: &ledger.Allocated{
			ServiceName: "remote", StartedBy: "ci", Purpose: "Fernzugriff – ünï 😀 \u2028 <&> \\ \x01", Lease: 90 * time.Second}}},
		// 2025-11-16 from here on.
		{{Type: ledger.EventReleased, Port: 8000, Released: &ledger.Released{
			Reason: "shutdown", ReleasedBy: "serve.py", DurationMS: 12345, RequestCount: 120, ErrorCount: 3},
			Actor: &ledger.Actor{Via: ledger.ViaSocket, UID: 1000, PID: 4242}}},
		{{Type: ledger.EventRangeChanged, RangeChanged: &ledger.RangeChanged{From: ledger.DefaultRange, To: ledger.Range{Lo: 8000, Hi: 8200}},
			Actor: &ledger.Actor{Via: ledger.ViaTCP, UID: -1, Token: "default"}}},
		{{Type: ledger.EventReleased, Port: 8001, Released: &ledger.Released{Reason: "dead", ReleasedBy: "watchdog", DurationMS: 60000}}},
		{{Type: ledger.EventPIDRegistered, Port: 9999, PIDRegistered: &ledger.PIDRegistered{PID: 5}}},
		{{Type: ledger.EventAllocated, Port: 8003, Allocated: &ledger.Allocated{ServiceName: "old", StartedBy: "import"},
			Imported: &ledger.ImportSource{File: "allocations_20251114.jsonl", Line: 3}}},
	}
}

// appendBatches appends each batch and calls after (if set) after each.
func appendBatches(t *testing.T, log *ledger.Log, batches [][]ledger.Event, after func(batch []ledger.Event)) []ledger.Event {
	t.Helper()
	var all []ledger.Event
	for _, b := range batches {
		evs, err := log.Append(b, nil)
		if err != nil {
			t.Fatalf("append: %v", err)
		}
		all = append(all, evs...)
		if after != nil {
			after(evs)
		}
	}
	return all
}

// liveFiles appends the batches to log, catching up the files of layout
// after each one, as the daemon does after each commit.
func liveFiles(t *testing.T, log *ledger.Log, layout ledger.Layout, batches [][]ledger.Event) []ledger.Event {
	t.Helper()
	is := is.New(t)
	files, err := OpenFiles(layout, log)
	is.NoErr(err) // open files
	evs := appendBatches(t, log, batches, func(batch []ledger.Event) {
		n, err := files.CatchUp()
		is.NoErr(err)           // catch up
		is.Equal(n, len(batch)) // one line per event of the batch
	})
	is.NoErr(files.Close()) // close files
	return evs
}

// readTree returns every file under the data directory but the log, by
// relative path, so leftovers (temporary files) show up too.
func readTree(t *testing.T, layout ledger.Layout) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(layout.Dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || path == layout.DB() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(layout.Dir, path)
		out[rel] = string(b)
		return nil
	})
	if err != nil {
		t.Fatalf("read tree: %v", err)
	}
	return out
}

func TestCatchUpMatchesReplay(t *testing.T) {
	is := is.New(t)
	log, layout := mustOpenLog(t)
	evs := liveFiles(t, log, layout, scenario())
	live := readTree(t, layout)
	is.Equal(len(live), 3) // port_registry.json and two day files

	res, err := Replay(layout, log, ReplayOptions{Verify: true})
	is.NoErr(err)                                   // verify
	is.True(res.Matched)                            // live files are the replay's
	is.Equal(len(res.Diffs), 0)                     // no diffs
	is.Equal(res.Events, uint64(len(evs)))          // every event replayed
	is.Equal(readTree(t, layout), live)             // verify changes nothing
	is.Equal(res.Files, []string{layout.Registry(), // registry, then days
		filepath.Join(layout.LogsDir(), "allocations_20251115.jsonl"),
		filepath.Join(layout.LogsDir(), "allocations_20251116.jsonl")})

	_, err = Replay(layout, log, ReplayOptions{})
	is.NoErr(err)                       // replay
	is.Equal(readTree(t, layout), live) // a replay from scratch writes the live bytes
	_, err = Replay(layout, log, ReplayOptions{})
	is.NoErr(err)                       // replay again
	is.Equal(readTree(t, layout), live) // and so does a second one

	files, err := OpenFiles(layout, log)
	is.NoErr(err) // reopen
	n, err := files.CatchUp()
	is.NoErr(err)                       // catch up with nothing new
	is.Equal(n, 0)                      // nothing written
	is.NoErr(files.Close())             // close
	is.Equal(readTree(t, layout), live) // files unchanged
}

// lines splits a file's content into its lines, each with its newline.
func lines(s string) []string { return strings.SplitAfter(s, "\n") }

func TestCrashRecovery(t *testing.T) {
	day2 := "logs/port_manager/allocations_20251116.jsonl"
	day1 := "logs/port_manager/allocations_20251115.jsonl"
	tests := []struct {
		name    string
		mutate  func(t *testing.T, layout ledger.Layout, ids []ulid.ULID)
		written int // events CatchUp must write, the extra batch's one included
	}{
		{
			name: "last line cut in the middle",
			mutate: func(t *testing.T, layout ledger.Layout, _ []ulid.ULID) {
				path := filepath.Join(layout.Dir, day2)
				b, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				last := bytes.LastIndexByte(b[:len(b)-1], '\n') + 1
				if err := os.Truncate(path, int64(last+(len(b)-last)/2)); err != nil {
					t.Fatal(err)
				}
			},
			written: 2,
		},
		{
			name: "last three lines gone",
			mutate: func(t *testing.T, layout ledger.Layout, _ []ulid.ULID) {
				path := filepath.Join(layout.Dir, day2)
				b, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				ls := lines(string(b))                   // the last element is ""
				keep := strings.Join(ls[:len(ls)-4], "") // drop three lines
				if err := os.WriteFile(path, []byte(keep), 0o600); err != nil {
					t.Fatal(err)
				}
			},
			written: 4,
		},
		{
			name: "three lines gone and the next one cut",
			mutate: func(t *testing.T, layout ledger.Layout, _ []ulid.ULID) {
				path := filepath.Join(layout.Dir, day2)
				b, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				ls := lines(string(b))
				keep := strings.Join(ls[:len(ls)-5], "") + ls[len(ls)-5][:20]
				if err := os.WriteFile(path, []byte(keep), 0o600); err != nil {
					t.Fatal(err)
				}
			},
			written: 5,
		},
		{
			name: "newest day file gone",
			mutate: func(t *testing.T, layout ledger.Layout, _ []ulid.ULID) {
				if err := os.Remove(filepath.Join(layout.Dir, day2)); err != nil {
					t.Fatal(err)
				}
			},
			written: 6,
		},
		{
			name: "newest day file cut inside its first line",
			mutate: func(t *testing.T, layout ledger.Layout, _ []ulid.ULID) {
				if err := os.Truncate(filepath.Join(layout.Dir, day2), 30); err != nil {
					t.Fatal(err)
				}
			},
			written: 6,
		},
		{
			name: "every file gone",
			mutate: func(t *testing.T, layout ledger.Layout, _ []ulid.ULID) {
				if err := os.RemoveAll(filepath.Join(layout.Dir, "logs")); err != nil {
					t.Fatal(err)
				}
				if err := os.Remove(layout.Registry()); err != nil {
					t.Fatal(err)
				}
			},
			written: 13,
		},
		{
			name: "last line not JSON",
			mutate: func(t *testing.T, layout ledger.Layout, _ []ulid.ULID) {
				f, err := os.OpenFile(filepath.Join(layout.Dir, day2), os.O_WRONLY|os.O_APPEND, 0)
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				if _, err := f.WriteString("{\"event_id\": oops\n"); err != nil {
					t.Fatal(err)
				}
			},
			written: 13, // rebuilt from the start
		},
		{
			name: "last line names an event the log lacks",
			mutate: func(t *testing.T, layout ledger.Layout, ids []ulid.ULID) {
				path := filepath.Join(layout.Dir, day2)
				b, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				last := ids[len(ids)-1]
				foreign := last
				foreign[15]++
				b = bytes.ReplaceAll(b, []byte(last.String()), []byte(foreign.String()))
				if err := os.WriteFile(path, b, 0o600); err != nil {
					t.Fatal(err)
				}
			},
			written: 13,
		},
		{
			name: "day 1 line in the day 2 file",
			mutate: func(t *testing.T, layout ledger.Layout, _ []ulid.ULID) {
				b, err := os.ReadFile(filepath.Join(layout.Dir, day1))
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(layout.Dir, day2), b, 0o600); err != nil {
					t.Fatal(err)
				}
			},
			written: 13,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			log, layout := mustOpenLog(t)
			evs := liveFiles(t, log, layout, scenario())
			ids := make([]ulid.ULID, len(evs))
			for i, e := range evs {
				ids[i] = e.ID
			}
			tt.mutate(t, layout, ids)

			// The log moved on while the files were broken.
			appendBatches(t, log, [][]ledger.Event{{{Type: ledger.EventStatsReported, Port: 8002,
				StatsReported: &ledger.StatsReported{RequestCount: 7, ErrorCount: 1}}}}, nil)

			files, err := OpenFiles(layout, log)
			is.NoErr(err) // open broken files
			n, err := files.CatchUp()
			is.NoErr(err)           // catch up
			is.Equal(n, tt.written) // exactly the missing events
			is.NoErr(files.Close()) // close
			recovered := readTree(t, layout)

			res, err := Replay(layout, log, ReplayOptions{Verify: true})
			is.NoErr(err)            // verify
			is.Equal(res.Diffs, nil) // recovered files are the replay's
			is.True(res.Matched)     // matched
			_, err = Replay(layout, log, ReplayOptions{})
			is.NoErr(err)                            // replay
			is.Equal(readTree(t, layout), recovered) // byte for byte
		})
	}
}

func TestOpenFilesFromSnapshot(t *testing.T) {
	is := is.New(t)
	log, layout := mustOpenLog(t)
	files, err := OpenFiles(layout, log)
	is.NoErr(err) // open
	// Every batch stores a snapshot, as the writer does every N events.
	reg := NewRegistry()
	snap := func(_ uint64, batch []ledger.Event) ([]byte, error) {
		for _, e := range batch {
			reg.Apply(e)
		}
		return reg.MarshalSnapshot()
	}
	for _, batch := range scenario() {
		_, err := log.Append(batch, snap)
		is.NoErr(err) // append with a snapshot
		_, err = files.CatchUp()
		is.NoErr(err) // catch up
	}
	is.NoErr(files.Close())

	// Drop the last three lines: the release of 8001 must still name its
	// holder, which now comes from the snapshot.
	path := filepath.Join(layout.LogsDir(), "allocations_20251116.jsonl")
	b, err := os.ReadFile(path)
	is.NoErr(err)
	ls := lines(string(b))
	is.NoErr(os.WriteFile(path, []byte(strings.Join(ls[:len(ls)-4], "")), 0o600))

	files, err = OpenFiles(layout, log)
	is.NoErr(err) // reopen
	n, err := files.CatchUp()
	is.NoErr(err)  // catch up
	is.Equal(n, 3) // the three lost lines
	is.NoErr(files.Close())
	b, err = os.ReadFile(path)
	is.NoErr(err)
	is.True(strings.Contains(string(b), `"action": "release", "port": 8001, "service_name": "learning"`)) // holder known

	res, err := Replay(layout, log, ReplayOptions{Verify: true})
	is.NoErr(err)            // verify
	is.Equal(res.Diffs, nil) // same as a fold from the start
}

func TestCatchUpAfterClose(t *testing.T) {
	is := is.New(t)
	log, layout := mustOpenLog(t)
	files, err := OpenFiles(layout, log)
	is.NoErr(err)           // open
	is.NoErr(files.Close()) // close
	_, err = files.CatchUp()
	is.True(err != nil) // closed files refuse to write
}

func BenchmarkCatchUpGroup(b *testing.B) {
	for _, group := range []int{1, 64} {
		b.Run("events="+strconv.Itoa(group), func(b *testing.B) {
			layout := ledger.Layout{Dir: b.TempDir()}
			log, err := ledger.Open(layout.DB(), ledger.Options{NoSync: true})
			if err != nil {
				b.Fatal(err)
			}
			defer log.Close()
			files, err := OpenFiles(layout, log)
			if err != nil {
				b.Fatal(err)
			}
			defer files.Close()
			if _, err := log.Append([]ledger.Event{{Type: ledger.EventAllocated, Port: 8000,
				Allocated: &ledger.Allocated{ServiceName: "api", StartedBy: "bench", Purpose: "benchmark"}}}, nil); err != nil {
				b.Fatal(err)
			}
			batch := make([]ledger.Event, group)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				for j := range batch {
					batch[j] = ledger.Event{Type: ledger.EventStatsReported, Port: 8000,
						StatsReported: &ledger.StatsReported{RequestCount: int64(i), ErrorCount: int64(j)}}
				}
				if _, err := log.Append(batch, nil); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				if _, err := files.CatchUp(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// A catch-up over many events reads the log in chunks, each in its own read
// transaction, and writes the same files as a replay.
func TestCatchUpInChunks(t *testing.T) {
	is := is.New(t)
	defer func(n uint64) { catchUpChunk = n }(catchUpChunk)
	catchUpChunk = 3
	log, layout := mustOpenLog(t)
	evs := appendBatches(t, log, scenario(), nil)

	files, err := OpenFiles(layout, log)
	is.NoErr(err) // open files
	n, err := files.CatchUp()
	is.NoErr(err)           // one catch-up over every event
	is.Equal(n, len(evs))   // one line per event, none twice
	is.NoErr(files.Close()) // close
	live := readTree(t, layout)

	res, err := Replay(layout, log, ReplayOptions{Verify: true})
	is.NoErr(err)        // verify
	is.True(res.Matched) // the chunked catch-up wrote the replay's bytes
	is.True(len(evs) > 2*int(catchUpChunk))
	is.Equal(readTree(t, layout), live)
}

func TestProgressSaysWhereTheFilesStand(t *testing.T) {
	is := is.New(t)
	log, layout := mustOpenLog(t)
	files, err := OpenFiles(layout, log)
	is.NoErr(err)
	is.Equal(files.Progress(), ledger.FilesStatus{}) // nothing written, nothing running
	evs := appendBatches(t, log, scenario(), nil)
	_, err = files.CatchUp()
	is.NoErr(err)
	got := files.Progress()
	is.True(!got.CatchingUp)               // the catch-up is over
	is.Equal(got.UpTo, evs[len(evs)-1].ID) // the files hold every event
	is.NoErr(files.Close())
}

// A long catch-up writes its chunks behind it to disk and drops them from
// the page cache (dropbehind.go), and writes the bytes that catch-ups after
// every commit wrote.
func TestLongCatchUpDropsBehindItself(t *testing.T) {
	is := is.New(t)
	defer func(n int) { flushBytes = n }(flushBytes)
	log, layout := mustOpenLog(t)
	var batches [][]ledger.Event
	for range 40 {
		batches = append(batches, scenario()...)
	}
	liveFiles(t, log, layout, batches) // caught up after every batch, in small writes
	live := readTree(t, layout)

	flushBytes = 512 // every chunk of the replay is "full"
	built := ledger.Layout{Dir: t.TempDir()}
	w := newEmptyFiles(built, log)
	n, err := w.catchUp(nil)
	is.NoErr(err) // one long catch-up
	is.True(n > 0)
	is.True(w.behind.dropped > 10) // it dropped its chunks behind it
	is.NoErr(w.Close())
	is.Equal(readTree(t, built), live) // and wrote the same bytes
}

// A catch-up whose write fails midway returns the error with the position
// at the last line written, and the next one, once the cause is gone, goes
// on from there to the replay's bytes.
func TestCatchUpAfterAFailedWrite(t *testing.T) {
	is := is.New(t)
	defer func(n int) { flushBytes = n }(flushBytes)
	flushBytes = 512
	log, layout := mustOpenLog(t)
	var batches [][]ledger.Event
	for range 40 {
		batches = append(batches, scenario()...)
	}
	evs := appendBatches(t, log, batches, nil)

	// A directory where the second day's file must go.
	blocked := filepath.Join(layout.LogsDir(), "allocations_20251116.jsonl")
	is.NoErr(os.MkdirAll(blocked, 0o700))
	files, err := OpenFiles(layout, log)
	is.NoErr(err)
	_, err = files.CatchUp()
	is.True(err != nil) // the write fails
	got := files.Progress()
	is.True(!got.CatchingUp)
	day1 := 0
	for _, e := range evs {
		if dayFileName(e.At) == "allocations_20251115.jsonl" {
			day1++
		}
	}
	is.True(day1 > 0 && day1 < len(evs))
	is.Equal(got.UpTo, evs[day1-1].ID) // the position is the first day's last line

	is.NoErr(os.Remove(blocked))
	_, err = files.CatchUp()
	is.NoErr(err) // goes on
	is.NoErr(files.Close())
	res, err := Replay(layout, log, ReplayOptions{Verify: true})
	is.NoErr(err)
	is.True(res.Matched) // to the replay's bytes
}
