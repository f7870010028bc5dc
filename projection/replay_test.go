package projection

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/matryer/is"
	"github.com/portledger/portledger/ledger"
)

func TestReplayVerify(t *testing.T) {
	is := is.New(t)
	log, layout := mustOpenLog(t)
	liveFiles(t, log, layout, scenario())
	day1 := filepath.Join(layout.LogsDir(), "allocations_20251115.jsonl")
	day2 := filepath.Join(layout.LogsDir(), "allocations_20251116.jsonl")

	res, err := Replay(layout, log, ReplayOptions{Verify: true})
	is.NoErr(err)               // verify untouched files
	is.True(res.Matched)        // they match
	is.Equal(len(res.Diffs), 0) // no diffs

	// Edit the third line of day 1.
	b, err := os.ReadFile(day1)
	is.NoErr(err)
	ls := strings.Split(string(b), "\n")
	orig := ls[2]
	ls[2] = strings.Replace(orig, `"reason": "listening"`, `"reason": "edited"`, 1)
	is.True(ls[2] != orig) // the edit took
	is.NoErr(os.WriteFile(day1, []byte(strings.Join(ls, "\n")), 0o600))
	edited := readTree(t, layout)

	res, err = Replay(layout, log, ReplayOptions{Verify: true})
	is.NoErr(err)         // verify edited files
	is.True(!res.Matched) // a mismatch
	is.Equal(res.Diffs, []FileDiff{{File: day1, Line: 3, Want: orig, Got: ls[2]}})
	is.Equal(readTree(t, layout), edited) // verify leaves the files alone

	// A missing day file and an extra one.
	day2Content, err := os.ReadFile(day2)
	is.NoErr(err)
	is.NoErr(os.Remove(day2))
	extra := filepath.Join(layout.LogsDir(), "allocations_20200101.jsonl")
	is.NoErr(os.WriteFile(extra, []byte("{\"stray\": 1}\n"), 0o600))
	res, err = Replay(layout, log, ReplayOptions{Verify: true})
	is.NoErr(err) // verify
	is.True(!res.Matched)
	is.Equal(res.Diffs, []FileDiff{
		{File: day1, Line: 3, Want: orig, Got: ls[2]},
		{File: day2, Line: 0, Want: strings.SplitN(string(day2Content), "\n", 2)[0]}, // missing in place
		{File: extra, Line: 0, Got: `{"stray": 1}`},                                  // not from the log
	})

	// A line missing at the end of the registry file.
	reg, err := os.ReadFile(layout.Registry())
	is.NoErr(err)
	regLines := strings.SplitAfter(string(reg), "\n")
	is.NoErr(os.WriteFile(layout.Registry(), []byte(strings.Join(regLines[:len(regLines)-2], "")), 0o600))
	res, err = Replay(layout, log, ReplayOptions{Verify: true})
	is.NoErr(err)
	is.Equal(res.Diffs[0], FileDiff{File: layout.Registry(), Line: len(regLines) - 1, Want: "}"})

	// Without Verify, replay puts everything right and removes the extra file.
	_, err = Replay(layout, log, ReplayOptions{})
	is.NoErr(err) // replay
	_, err = os.Stat(extra)
	is.True(os.IsNotExist(err)) // the stray day file is gone
	res, err = Replay(layout, log, ReplayOptions{Verify: true})
	is.NoErr(err)        // verify again
	is.True(res.Matched) // everything matches
	is.Equal(res.Diffs, nil)
}

func TestReplayEmptyLog(t *testing.T) {
	is := is.New(t)
	log, layout := mustOpenLog(t)
	res, err := Replay(layout, log, ReplayOptions{})
	is.NoErr(err) // replay
	is.Equal(res.Events, uint64(0))
	is.Equal(res.Files, []string{layout.Registry()}) // no day files
	tree := readTree(t, layout)
	is.Equal(len(tree), 1) // just port_registry.json, no leftovers
	is.Equal(tree[filepath.Join("databases", "port_registry", "port_registry.json")],
		"{\n  \"allocations\": {},\n  \"last_event_id\": \"\",\n  \"port_range\": \"8000-8100\"\n}\n")
}

func TestLeftoversRemoved(t *testing.T) {
	is := is.New(t)
	log, layout := mustOpenLog(t)
	liveFiles(t, log, layout, scenario())
	want := readTree(t, layout)

	// What a crash inside writeFileAtomic and inside Replay leaves behind.
	tmpReg := filepath.Join(filepath.Dir(layout.Registry()), ".port_registry.json.tmp-123")
	is.NoErr(os.WriteFile(tmpReg, []byte("{"), 0o600))
	tmpDir := filepath.Join(layout.Dir, ".replay-456", "logs")
	is.NoErr(os.MkdirAll(tmpDir, 0o700))
	is.NoErr(os.WriteFile(filepath.Join(tmpDir, "allocations_20251115.jsonl"), []byte("{}\n"), 0o600))

	files, err := OpenFiles(layout, log)
	is.NoErr(err) // open
	is.NoErr(files.Close())
	_, err = os.Stat(tmpReg)
	is.True(os.IsNotExist(err)) // the registry's temp file is gone

	_, err = Replay(layout, log, ReplayOptions{Verify: true})
	is.NoErr(err)                       // verify
	is.Equal(readTree(t, layout), want) // the stale replay folder is gone too
}

func TestReplayProgress(t *testing.T) {
	is := is.New(t)
	log, layout := mustOpenLog(t)
	const n = 60_001
	batch := make([]ledger.Event, 0, n)
	batch = append(batch, ledger.Event{Type: ledger.EventAllocated, Port: 8000,
		Allocated: &ledger.Allocated{ServiceName: "api", StartedBy: "test", Purpose: "progress"}})
	for i := 1; i < n; i++ {
		batch = append(batch, ledger.Event{Type: ledger.EventStatsReported, Port: 8000,
			StatsReported: &ledger.StatsReported{RequestCount: int64(i)}})
	}
	_, err := log.Append(batch, nil)
	is.NoErr(err) // append

	var calls [][2]uint64
	res, err := Replay(layout, log, ReplayOptions{Progress: func(done, total uint64) {
		calls = append(calls, [2]uint64{done, total})
	}})
	is.NoErr(err) // replay
	is.Equal(res.Events, uint64(n))
	is.Equal(calls, [][2]uint64{{50_000, n}, {n, n}}) // every 50k events and at the end

	b, err := os.ReadFile(res.Files[1])
	is.NoErr(err)                               // the day file
	is.Equal(strings.Count(string(b), "\n"), n) // one line per event, across flushes
}

func BenchmarkReplay(b *testing.B) {
	const n = 100_000
	layout := ledger.Layout{Dir: b.TempDir()}
	log, err := ledger.Open(layout.DB(), ledger.Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer log.Close()
	batch := make([]ledger.Event, 0, 1000)
	for i := 0; i < n; i += cap(batch) {
		batch = batch[:0]
		for j := 0; j < cap(batch); j++ {
			port := 8000 + (i+j)%100
			switch (i + j) / 100 % 3 {
			case 0:
				batch = append(batch, ledger.Event{Type: ledger.EventAllocated, Port: port,
					Allocated: &ledger.Allocated{ServiceName: "svc", StartedBy: "bench", Purpose: "replay benchmark", PID: 4242}})
			case 1:
				batch = append(batch, ledger.Event{Type: ledger.EventStatsReported, Port: port,
					StatsReported: &ledger.StatsReported{RequestCount: int64(i), ErrorCount: 1}})
			default:
				batch = append(batch, ledger.Event{Type: ledger.EventReleased, Port: port,
					Released: &ledger.Released{Reason: "done", ReleasedBy: "bench", DurationMS: 1500}})
			}
		}
		if _, err := log.Append(batch, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := Replay(layout, log, ReplayOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/event")
}
