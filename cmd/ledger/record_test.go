package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/matryer/is"
	"github.com/oklog/ulid/v2"
	"github.com/portledger/portledger/internal/ledgerfile"
	"github.com/portledger/portledger/ledger"
	"github.com/portledger/portledger/watchdog"
	bolt "go.etcd.io/bbolt"
)

// The record's trust boundaries (issue "Trust boundaries", items 2, 3, 4
// and 6): imports write the past only, hostile strings never reach the
// terminal raw, and a rewritten log is caught.

const recordToken = "record-test-token"

// recordStatus reads the daemon's status over TCP.
func recordStatus(t *testing.T, base string) ledger.Status {
	t.Helper()
	req, _ := http.NewRequest("GET", base+"/api/ports/status", nil)
	req.Header.Set("Authorization", "Bearer "+recordToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	defer resp.Body.Close()
	var st ledger.Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatalf("status: %v", err)
	}
	return st
}

func TestImportAttacksAreRefused(t *testing.T) {
	is := is.New(t)
	data := t.TempDir() // its own range, 21400-21499: another program of the machine may listen in 8000-8100
	d, err := startDaemon(context.Background(), daemonConfig{Data: data, Addr: "127.0.0.1:0", Range: ledger.Range{Lo: 21400, Hi: 21499}, Security: security{Token: recordToken, WriteGroup: -1}, Watchdog: watchdog.Options{Interval: time.Hour}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	is.NoErr(err) // start the daemon
	defer d.shutdown()
	base := "http://" + d.addrDesc()

	// The ledger's own life: 21400 held now, 21401 held and released.
	_, _, err = runCLI(t, "allocate", "--service", "live", "--port", "21400", "--data", data, "--token", recordToken)
	is.NoErr(err)
	_, _, err = runCLI(t, "allocate", "--service", "lived", "--port", "21401", "--data", data, "--token", recordToken)
	is.NoErr(err)
	_, _, err = runCLI(t, "release", "21401", "--data", data, "--token", recordToken)
	is.NoErr(err)
	before := recordStatus(t, base)
	is.True(before.PortManager.Chain != nil) // status carries the chain head

	time.Sleep(20 * time.Millisecond) // "now" below is after the ledger's own events
	now := time.Now()
	past := func(ago time.Duration, e ledger.Event) ledger.Event {
		e.ID = ledger.SinceID(now.Add(-ago))
		e.At = ledger.IDTime(e.ID)
		e.Imported = &ledger.ImportSource{File: "allocations_20251115.jsonl", Line: 12}
		return e
	}
	alloc := func(port int, svc, startedBy, purpose string) ledger.Event {
		return ledger.Event{Type: ledger.EventAllocated, Port: port, Allocated: &ledger.Allocated{ServiceName: svc, StartedBy: startedBy, Purpose: purpose}}
	}
	release := func(port int) ledger.Event {
		return ledger.Event{Type: ledger.EventReleased, Port: port, Released: &ledger.Released{Reason: "gone"}}
	}
	oldAlloc := past(400*24*time.Hour, alloc(21450, "old", "serve.py", "x"))
	oldRelease := past(399*24*time.Hour, release(21450))
	tests := []struct {
		name   string
		events []ledger.Event
		index  int    // the event the refusal names
		reason string // a word of the refusal
	}{
		{"allocation onto a port held now", []ledger.Event{oldAlloc, oldRelease, past(time.Millisecond, alloc(21400, "intruder", "", ""))}, 2, "at or after"},
		{"release of a live allocation", []ledger.Event{past(time.Millisecond, release(21400))}, 0, "at or after"},
		{"allocation that holds a port now", []ledger.Event{oldAlloc}, 0, "held now"},
		{"range_changed", []ledger.Event{past(time.Hour, ledger.Event{Type: ledger.EventRangeChanged, RangeChanged: &ledger.RangeChanged{From: ledger.DefaultRange, To: ledger.Range{Lo: 1, Hi: 1}}})}, 0, "not importable"},
		{"conflict", []ledger.Event{past(time.Hour, ledger.Event{Type: ledger.EventConflictDetected, Port: 21470, Conflict: &ledger.ConflictDetected{PID: 2, Command: "nc"}})}, 0, "not importable"},
		{"dated after the ledger's first event on the port", []ledger.Event{past(time.Millisecond, ledger.Event{Type: ledger.EventStatsReported, Port: 21401, StatsReported: &ledger.StatsReported{RequestCount: 1}})}, 0, "at or after"},
		{"terminal escape in a purpose", []ledger.Event{past(300*24*time.Hour, alloc(21460, "svc", "", "\x1b]0;pwned\x07\x1b[2J")), past(299*24*time.Hour, release(21460))}, 0, "control characters"},
		{"newline in a reason", []ledger.Event{oldAlloc, past(399*24*time.Hour, ledger.Event{Type: ledger.EventReleased, Port: 21450, Released: &ledger.Released{Reason: "a\nb"}})}, 1, "control characters"},
		{"right-to-left override", []ledger.Event{past(300*24*time.Hour, alloc(21460, "svc", "evil\u202eexe.txt", "")), past(299*24*time.Hour, release(21460))}, 0, "U+202E"},
		{"100 KB string", []ledger.Event{past(300*24*time.Hour, alloc(21460, "svc", "", strings.Repeat("A", 100<<10))), past(299*24*time.Hour, release(21460))}, 0, "limit"},
		{"service name outside the API's alphabet", []ledger.Event{past(300*24*time.Hour, alloc(21460, "svc name;rm", "", "")), past(299*24*time.Hour, release(21460))}, 0, "only letters"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			body, err := json.Marshal(map[string]any{"events": tt.events})
			is.NoErr(err)
			req, _ := http.NewRequest("POST", base+"/api/ports/import", bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+recordToken)
			resp, err := http.DefaultClient.Do(req)
			is.NoErr(err)
			defer resp.Body.Close()
			var answer struct{ Error, Code string }
			is.NoErr(json.NewDecoder(resp.Body).Decode(&answer))
			is.Equal(resp.StatusCode, http.StatusBadRequest) // refused
			is.Equal(answer.Code, "invalid")
			is.True(strings.Contains(answer.Error, fmt.Sprintf("event %d (allocations_20251115.jsonl:12)", tt.index))) // names the event
			is.True(strings.Contains(answer.Error, tt.reason))                                                         // and why
			after := recordStatus(t, base)
			is.Equal(*after.PortManager.Chain, *before.PortManager.Chain) // the log is unchanged: same chain head
			is.Equal(after.PortManager.Allocations, before.PortManager.Allocations)
		})
	}

	// The past itself is welcome, and marked as imported wherever it shows.
	body, _ := json.Marshal(map[string]any{"events": []ledger.Event{oldAlloc, oldRelease}})
	req, _ := http.NewRequest("POST", base+"/api/ports/import", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+recordToken)
	resp, err := http.DefaultClient.Do(req)
	is.NoErr(err)
	resp.Body.Close()
	is.Equal(resp.StatusCode, http.StatusOK) // a past that ends is imported
	at := ledger.FormatTime(now.Add(-399*24*time.Hour - time.Hour))
	out, _, err := runCLI(t, "who", "21450", "--at", at, "--data", data, "--token", recordToken)
	is.NoErr(err)
	is.True(strings.Contains(out, "imported:   from allocations_20251115.jsonl:12")) // who marks an imported holder
	out, _, err = runCLI(t, "who", "21450", "--at", at, "--json", "--data", data, "--token", recordToken)
	is.NoErr(err)
	is.True(strings.Contains(out, `"imported_from": "allocations_20251115.jsonl:12"`)) // and so does its JSON
	out, _, err = runCLI(t, "status", "--at", at, "--data", data, "--token", recordToken)
	is.NoErr(err)
	is.True(strings.Contains(out, "[imported from allocations_20251115.jsonl:12]")) // status --at too
	out, _, err = runCLI(t, "usage", "--since", "500d", "--data", data, "--token", recordToken)
	is.NoErr(err)
	is.True(strings.Contains(out, "old (1 of 1 holds imported)")) // and usage
	out, _, err = runCLI(t, "history", "--port", "21450", "--data", data, "--token", recordToken)
	is.NoErr(err)
	is.True(strings.Contains(out, "imported from allocations_20251115.jsonl:12")) // and history
}

func TestImportFileWithHostileStringsIsRefusedByLine(t *testing.T) {
	is := is.New(t)
	data, root := t.TempDir(), t.TempDir()
	logs := ledger.Layout{Dir: root}.LogsDir()
	is.NoErr(os.MkdirAll(logs, 0o700))
	is.NoErr(os.WriteFile(filepath.Join(logs, "allocations_20251115.jsonl"), []byte(
		`{"timestamp": "2025-11-15T14:30:00Z", "action": "allocate", "port": 8000, "service_name": "grace_backend", "started_by": "serve.py", "purpose": "ok"}
{"timestamp": "2025-11-15T15:30:00Z", "action": "release", "port": 8000, "reason": "\u001b]0;owned\u0007"}
`), 0o600))
	_, errOut, err := runCLI(t, "import", "--from", root, "--data", data)
	is.True(err != nil) // refused
	var buf bytes.Buffer
	is.Equal(report(err, &buf), 1)                                          // exit 1
	is.True(strings.Contains(buf.String(), "allocations_20251115.jsonl:2")) // names the file and line
	is.True(!strings.ContainsRune(buf.String()+errOut, 0x1b))               // and prints no escape raw
	out, _, err := runCLI(t, "history", "--data", data)
	is.NoErr(err)
	is.True(strings.Contains(out, "No events.")) // nothing was written
}

// hostile is a string that would change a terminal's title, clear the
// screen, fake a new line and reverse the text after it.
var hostile = "\x1b]0;pwned\x07\x1b[2J\nFAKE LINE\u202eexe.txt" + strings.Repeat("x", 5000)

func TestHostileStringsAreEscapedInEveryOutput(t *testing.T) {
	is := is.New(t)
	data := t.TempDir()
	// A log written before the checks (or by a tool that skipped them):
	// the strings are stored as they came.
	l, err := ledger.Open(ledger.Layout{Dir: data}.DB(), ledger.Options{})
	is.NoErr(err)
	evs, err := l.Append([]ledger.Event{
		{Type: ledger.EventAllocated, Port: 8000, Allocated: &ledger.Allocated{ServiceName: "svc" + hostile, StartedBy: hostile, Purpose: hostile}},
		{Type: ledger.EventConflictDetected, Port: 8007, Conflict: &ledger.ConflictDetected{PID: 77, Command: hostile}},
	}, nil)
	is.NoErr(err)
	_, err = l.Append([]ledger.Event{
		{Type: ledger.EventReleased, Port: 8000, Released: &ledger.Released{Reason: hostile, ReleasedBy: hostile}},
		{Type: ledger.EventAllocated, Port: 8001, Allocated: &ledger.Allocated{ServiceName: "svc" + hostile, Purpose: hostile}},
	}, nil)
	is.NoErr(err)
	is.NoErr(l.Close())

	at := evs[1].ID.String()
	for _, args := range [][]string{
		{"status"},
		{"status", "--at", at},
		{"history"},
		{"who", "8000", "--at", at},
		{"who", "8000"},
		{"usage"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			is := is.New(t)
			out, errOut, err := runCLI(t, append(args, "--data", data)...)
			is.NoErr(err)
			all := out + errOut
			is.True(!strings.ContainsRune(all, 0x1b))      // no ESC reaches the terminal
			is.True(!strings.ContainsRune(all, '\u202e'))  // no right-to-left override
			is.True(!strings.ContainsRune(all, 0x07))      // no BEL
			is.True(!strings.Contains(all, "\nFAKE"))      // no forged line
			is.True(strings.Contains(all, `\x1b]0;pwned`)) // but shown, escaped
			for _, line := range strings.Split(all, "\n") {
				is.True(len(line) < 2000) // lengths are bounded
				for _, r := range line {
					is.True(unicode.IsPrint(r)) // every rune printable
				}
			}
		})
	}
}

func TestDaemonRefusesABrokenChainUnlessTold(t *testing.T) {
	is := is.New(t)
	data := t.TempDir()
	for _, svc := range []string{"s1", "s2", "s3"} {
		_, _, err := runCLI(t, "allocate", "--service", svc, "--data", data) // any free port: another process may listen on one
		is.NoErr(err)
	}
	out, _, err := runCLI(t, "status", "--data", data)
	is.NoErr(err)
	is.True(strings.Contains(out, "Chain head: link 3, ")) // status shows the chain head
	out, _, err = runCLI(t, "verify", "--data", data)
	is.NoErr(err)                                          // an untouched log verifies
	is.True(strings.Contains(out, "chain holds: 3 links")) // every link

	// Delete the second event with bbolt, as an attacker with the file would.
	var victim, next ulid.ULID
	db, err := bolt.Open(ledger.Layout{Dir: data}.DB(), 0o600, &bolt.Options{Timeout: time.Second})
	is.NoErr(err)
	is.NoErr(db.Update(func(tx *bolt.Tx) error {
		events := ledgerfile.Events{Tx: tx}
		keys := events.Keys()
		copy(victim[:], keys[1])
		copy(next[:], keys[2])
		return events.Delete(victim[:])
	}))
	is.NoErr(db.Close())

	out, _, err = runCLI(t, "verify", "--data", data)
	is.True(err != nil)                                                      // verify fails
	is.True(strings.Contains(out, "BROKEN at link 2, event "+next.String())) // naming the first bad link
	out, _, err = runCLI(t, "verify", "--json", "--data", data)
	is.True(err != nil)
	var rep ledger.ChainReport
	is.NoErr(json.Unmarshal([]byte(out), &rep))
	is.Equal(rep.Break.EventID, next) // the JSON names it too

	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	_, err = startDaemon(context.Background(), daemonConfig{Data: data, Security: security{WriteGroup: -1}, Watchdog: watchdog.Options{Interval: time.Hour}, Logger: logger})
	is.True(err != nil)                                            // the daemon refuses to start
	is.True(strings.Contains(err.Error(), "hash chain is broken")) // and says why
	is.True(strings.Contains(err.Error(), next.String()))          // and where

	d, err := startDaemon(context.Background(), daemonConfig{Data: data, Security: security{WriteGroup: -1}, Watchdog: watchdog.Options{Interval: time.Hour}, Logger: logger, AcceptBrokenChain: true})
	is.NoErr(err) // told, it starts
	out, _, err = runCLI(t, "history", "--json", "--data", data)
	is.NoErr(err)
	is.True(strings.Contains(out, `"type": "chain_accepted"`)) // and records the acceptance
	is.True(strings.Contains(out, next.String()))              // naming the break
	out, _, err = runCLI(t, "history", "--data", data)
	is.NoErr(err)
	is.True(strings.Contains(out, "event="+next.String())) // people see the break in history too: %s
	is.True(strings.Contains(out, `by="uid `))             // and who accepted it
	out, _, err = runCLI(t, "verify", "--data", data)
	is.NoErr(err)                                    // the accepted break no longer fails
	is.True(strings.Contains(out, "accepted break")) // but is still shown
	is.NoErr(d.shutdown())

	d, err = startDaemon(context.Background(), daemonConfig{Data: data, Security: security{WriteGroup: -1}, Watchdog: watchdog.Options{Interval: time.Hour}, Logger: logger})
	is.NoErr(err) // a later start without the flag works: the break was accepted
	is.NoErr(d.shutdown())
}

func TestReplayVerifyKeepsDifferingFilesAside(t *testing.T) {
	is := is.New(t)
	data := t.TempDir()
	_, _, err := runCLI(t, "allocate", "--service", "api", "--data", data)
	is.NoErr(err)
	logs := ledger.Layout{Dir: data}.LogsDir()
	days, err := filepath.Glob(filepath.Join(logs, "allocations_*.jsonl"))
	is.NoErr(err)
	is.Equal(len(days), 1)
	is.NoErr(os.WriteFile(days[0], []byte("{\"forged\": true}\n"), 0o600))

	out, _, err := runCLI(t, "replay", "--verify", "--data", data)
	var ex exitError
	is.True(errors.As(err, &ex)) // exit 1: a file differed
	is.True(strings.Contains(out, "kept aside: "+days[0]+".differed-"))
	aside, err := filepath.Glob(days[0] + ".differed-*")
	is.NoErr(err)
	is.Equal(len(aside), 1)
	kept, err := os.ReadFile(aside[0])
	is.NoErr(err)
	is.Equal(string(kept), "{\"forged\": true}\n") // the evidence is kept as it was
	_, _, err = runCLI(t, "replay", "--verify", "--data", data)
	is.NoErr(err) // the rebuilt file matches the log
}

func TestVerifyNamesTheFirstBadLink(t *testing.T) {
	// Each edit is done with bbolt on a closed file; want is the index, in
	// the log, of the event `ledger verify` must name.
	tests := []struct {
		name    string
		edit    func(b ledgerfile.Events, ids []ulid.ULID) error
		want    int
		checked uint64 // links that hold before it
	}{
		{"delete one event", func(b ledgerfile.Events, ids []ulid.ULID) error { return b.Delete(ids[2][:]) }, 3, 2},
		{"change one byte", func(b ledgerfile.Events, ids []ulid.ULID) error {
			v := bytes.Clone(b.Get(ids[1][:]))
			v[6] ^= 0x20 // a letter of the service name
			return b.Put(ids[1][:], v)
		}, 1, 1},
		{"reorder two events", func(b ledgerfile.Events, ids []ulid.ULID) error {
			v1, v3 := bytes.Clone(b.Get(ids[1][:])), bytes.Clone(b.Get(ids[3][:]))
			if err := b.Put(ids[1][:], v3); err != nil {
				return err
			}
			return b.Put(ids[3][:], v1)
		}, 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			data := t.TempDir()
			for _, svc := range []string{"api", "web", "worker", "db", "cache"} {
				_, _, err := runCLI(t, "allocate", "--service", svc, "--data", data)
				is.NoErr(err)
			}
			db, err := bolt.Open(ledger.Layout{Dir: data}.DB(), 0o600, &bolt.Options{Timeout: time.Second})
			is.NoErr(err)
			var ids []ulid.ULID
			is.NoErr(db.Update(func(tx *bolt.Tx) error {
				b := ledgerfile.Events{Tx: tx}
				_ = b.ForEach(func(k, _ []byte) error { ids = append(ids, ulid.ULID(k)); return nil })
				return tt.edit(b, ids)
			}))
			is.NoErr(db.Close())

			out, _, err := runCLI(t, "verify", "--json", "--data", data)
			is.True(err != nil) // exit 1
			var rep ledger.ChainReport
			is.NoErr(json.Unmarshal([]byte(out), &rep))
			is.Equal(rep.Break.EventID, ids[tt.want]) // the first bad link, named
			is.Equal(rep.Checked, tt.checked)         // every link before it holds
		})
	}
}
