package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/matryer/is"
	"github.com/portledger/portledger/commands"
	"github.com/portledger/portledger/internal/testbin"
	"github.com/portledger/portledger/ledger"
)

// oldRecordsEnd is when the old tool last wrote its registry in
// writeOldRoot: the last moment its files speak of.
var oldRecordsEnd = time.Date(2025, 10, 2, 0, 0, 0, 0, time.UTC)

// writeOldRoot writes an original port manager's files that lost releases:
// old_api (30510) is still in the registry, scratch (30511) was never
// released and is not in the registry, and the newest line is at 10:00 on
// 2025-10-01.
func writeOldRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	layout := ledger.Layout{Dir: root}
	files := map[string]string{
		filepath.Join(layout.LogsDir(), "allocations_20251001.jsonl"): `{"timestamp": "2025-10-01T09:00:00Z", "action": "allocate", "port": 30510, "service_name": "old_api", "started_by": "serve.py", "purpose": "API"}
{"timestamp": "2025-10-01T09:30:00Z", "action": "allocate", "port": 30511, "service_name": "scratch", "started_by": "notebook", "purpose": "try"}
{"timestamp": "2025-10-01T09:40:00Z", "action": "allocate", "port": 30512, "service_name": "worker", "started_by": "serve.py", "purpose": "jobs"}
{"timestamp": "2025-10-01T10:00:00Z", "action": "release", "port": 30512, "reason": "done", "duration_s": 1200}
`,
		layout.Registry(): `{"allocations": {"30510": {"port": 30510, "service_name": "old_api", "started_by": "serve.py", "purpose": "API", "pid": 4242, "allocated_at": "2025-10-01T09:00:00Z", "health_status": "active"}}}
`,
	}
	for path, body := range files {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chtimes(layout.Registry(), oldRecordsEnd, oldRecordsEnd); err != nil {
		t.Fatal(err)
	}
	return root
}

func TestImportedHoldsEndWithTheOriginalRecords(t *testing.T) {
	is := is.New(t)
	data := t.TempDir()
	// A ledger already in use.
	_, errOut, code := run(t, data, "allocate", "--service", "native")
	is.Equal(code, 0) // allocate
	is.Equal(errOut, "")

	out, errOut, code := run(t, data, "import", "--from", writeOldRoot(t))
	is.Equal(code, 0) // import
	m := regexp.MustCompile(`(\d+) events: (\d+) imported, (\d+) already in the ledger, (\d+) not imported`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("import prints no counts:\n%s%s", out, errOut)
	}
	n := make([]int, 4)
	for i := range n {
		n[i], _ = strconv.Atoi(m[i+1])
	}
	is.Equal(n[1]+n[2]+n[3], n[0]) // the counts add up
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "  ") {
			is.Equal(strings.Count(out, line+"\n"), 1) // each note is printed once
		}
	}
	is.True(strings.Contains(out, "end at 2025-10-02")) // the end of the records, said
	root := writeOldRoot(t)
	_, _, code = run(t, data, "import", "--from", root)
	is.Equal(code, 0)
	again, _, code := run(t, data, "import", "--from", root)
	is.Equal(code, 0)                               // the same files again
	is.True(strings.Contains(again, "nothing new")) // say so
	is.True(!strings.Contains(again, "\n  "))       // without the notes a second time

	tests := []struct {
		name string
		args []string
		want []string // parts of stdout
		not  []string // what it must not say
	}{
		{"the registry's holder during the records", []string{"who", "30510", "--at", "2025-10-01T12:00:00Z"},
			[]string{"held by old_api"}, nil},
		{"the registry's holder after the records", []string{"who", "30510", "--at", "2026-06-01"},
			[]string{"end of the original records"}, []string{"held by"}},
		{"a hold the registry forgot", []string{"who", "30511", "--at", "2025-10-01T12:00:00Z"},
			[]string{"not in the original registry"}, []string{"held by"}},
		{"the past registry after the records", []string{"status", "--at", "2026-06-01"},
			nil, []string{"old_api", "scratch"}},
		{"the registry now", []string{"status"}, []string{"native"}, []string{"old_api", "scratch"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			out, errOut, code := run(t, data, tt.args...)
			is.Equal(code, 0) // answered
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("%v: want %q in:\n%s%s", tt.args, w, out, errOut)
				}
			}
			for _, w := range tt.not {
				if strings.Contains(out, w) {
					t.Errorf("%v: want no %q in:\n%s", tt.args, w, out)
				}
			}
		})
	}

	// usage agrees with the old files: old_api held 30510 from 09:00 to the
	// registry's last write, 15 hours, not until today.
	out, _, code = run(t, data, "usage", "--since", "2025-09-30T00:00:00Z", "--json")
	is.Equal(code, 0)
	var u struct{ Usage []ledger.ServiceUsage }
	is.NoErr(json.Unmarshal([]byte(out), &u))
	hold := map[string]time.Duration{}
	for _, s := range u.Usage {
		hold[s.Service] = time.Duration(s.TotalHold)
	}
	is.Equal(hold["old_api"], 15*time.Hour) // to the end of the records
	is.True(hold["scratch"] < time.Minute)  // closed after its last line
	is.Equal(hold["worker"], 20*time.Minute)
}

// TestImportKilledBeforeTheFilesAreRebuilt commits an import and stops as a
// killed process would, before the past days' JSONL files are rewritten: the
// next start of the daemon mends them.
func TestImportKilledBeforeTheFilesAreRebuilt(t *testing.T) {
	is := is.New(t)
	data := t.TempDir()
	_, errOut, code := run(t, data, "allocate", "--service", "native")
	is.Equal(code, 0)
	is.Equal(errOut, "")
	day := filepath.Join(ledger.Layout{Dir: data}.LogsDir(), "allocations_20251001.jsonl")

	orig, err := commands.ReadOriginal(writeOldRoot(t))
	is.NoErr(err)
	log, err := ledger.Open(ledger.Layout{Dir: data}.DB(), ledger.Options{})
	is.NoErr(err)
	svc, err := commands.New(commands.Config{Log: log})
	is.NoErr(err)
	res, err := svc.Import(context.Background(), orig.Events)
	is.NoErr(err)
	is.True(res.Imported > 0) // committed
	svc.Close()
	is.NoErr(log.Close()) // and nothing else: the files were never rebuilt
	_, err = os.Stat(day)
	is.True(os.IsNotExist(err)) // the past day's file is missing

	startServeEnv(t, data, testbin.Env(data, e2eRange))
	testbin.WaitFor(t, "the past day's JSONL file is written", func() bool {
		_, err := os.Stat(day)
		return err == nil
	})
	body, err := os.ReadFile(day)
	is.NoErr(err)
	is.True(strings.Contains(string(body), `"service_name": "old_api"`)) // the imported past is in it
	end, err := os.ReadFile(filepath.Join(filepath.Dir(day), "allocations_20251002.jsonl"))
	is.NoErr(err)                                                         // the day of the end of the records
	is.True(strings.Contains(string(end), "end of the original records")) // holds its releases
}
