package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/matryer/is"
	"github.com/portledger/portledger/ledger"
)

// TestUsagePagesThroughTheDaemon pages `ledger usage` through a running
// daemon: the pages hold every service once, in order, with the counts of
// the answer printed whole, and --limit tells where the next page starts.
func TestUsagePagesThroughTheDaemon(t *testing.T) {
	is := is.New(t)
	data, root := t.TempDir(), t.TempDir()
	logs := ledger.Layout{Dir: root}.LogsDir()
	is.NoErr(os.MkdirAll(logs, 0o700))
	// 23 services over a day of the original port manager's files, some
	// holding their ports past the window's end.
	var b strings.Builder
	t0 := time.Date(2025, 11, 15, 8, 0, 0, 0, time.UTC)
	for i := range 23 {
		at := t0.Add(time.Duration(i) * 10 * time.Minute)
		port := 8000 + i
		fmt.Fprintf(&b, `{"timestamp": %q, "action": "allocate", "port": %d, "service_name": "svc-%02d", "started_by": "t", "purpose": "p"}`+"\n",
			at.Format(time.RFC3339), port, (i*5)%23)
		if i%4 != 0 {
			fmt.Fprintf(&b, `{"timestamp": %q, "action": "release", "port": %d, "reason": "shutdown", "duration_s": %d}`+"\n",
				at.Add(time.Duration(i+1)*time.Minute).Format(time.RFC3339), port, (i+1)*60)
		}
	}
	is.NoErr(os.WriteFile(filepath.Join(logs, "allocations_20251115.jsonl"), []byte(b.String()), 0o600))
	_, _, err := runCLI(t, "import", "--from", root, "--data", data)
	is.NoErr(err) // import the day
	startServe(t, data)

	type answer struct {
		Usage []ledger.ServiceUsage `json:"usage"`
		Next  string                `json:"next"`
	}
	window := []string{"usage", "--since", "2025-11-15T00:00:00Z", "--until", "2025-11-16T00:00:00Z", "--json", "--data", data}
	out, _, err := runCLI(t, window...)
	is.NoErr(err)
	var whole answer
	is.NoErr(json.Unmarshal([]byte(out), &whole))
	is.Equal(len(whole.Usage), 23) // every service
	is.Equal(whole.Next, "")       // all of it

	for _, limit := range []int{1, 4, 23} {
		var got []ledger.ServiceUsage
		after, pages := "", 0
		for {
			args := append(window, "--limit", fmt.Sprint(limit))
			if after != "" {
				args = append(args, "--after", after)
			}
			out, errOut, err := runCLI(t, args...)
			is.NoErr(err)
			var page answer
			is.NoErr(json.Unmarshal([]byte(out), &page))
			is.True(len(page.Usage) <= limit) // a page
			got = append(got, page.Usage...)
			pages++
			if page.Next == "" {
				is.Equal(errOut, "") // nothing more to say
				break
			}
			is.Equal(page.Next, page.Usage[len(page.Usage)-1].Service) // the page's last service
			is.True(strings.Contains(errOut, "--after "+page.Next))    // and the next page's flag
			after = page.Next
		}
		is.Equal(got, whole.Usage)          // every service once, as in the whole answer
		is.Equal(pages, (23+limit-1)/limit) // no empty page
	}
	var allocs, shutdown int
	for _, u := range whole.Usage {
		allocs += u.Allocations
		shutdown += u.Releases["shutdown"]
	}
	is.Equal(allocs, 23)   // one allocation each
	is.Equal(shutdown, 17) // all but i = 0, 4, ..., 20 released with a reason

	// The table through the daemon: a header and a row per service.
	table, _, err := runCLI(t, "usage", "--since", "2025-11-15T00:00:00Z", "--until", "2025-11-16T00:00:00Z", "--data", data)
	is.NoErr(err)
	lines := strings.Split(strings.TrimSpace(table), "\n")
	is.Equal(len(lines), 24)                                               // the header and 23 services
	is.True(strings.HasPrefix(lines[1], "svc-00 (1 of 1 holds imported)")) // by name
	is.True(strings.HasPrefix(lines[23], "svc-22 "))                       // to the last
}

// TestUsageJSONPrintsAsPrintJSON: the JSON that usage prints a service at a
// time is the bytes printJSON prints of the whole answer.
func TestUsageJSONPrintsAsPrintJSON(t *testing.T) {
	is := is.New(t)
	rows := []ledger.ServiceUsage{
		{Service: "a<b>", Allocations: 2, Holds: 3, TotalHold: ledger.Duration(90 * time.Second), LongestPort: 8001, Releases: map[string]int{"done": 1, "": 2}},
		{Service: "c", Holds: 1, HeldAtEnd: 1, Releases: map[string]int{}, ImportedHolds: 1},
	}
	for n := range len(rows) + 1 {
		var want, got bytes.Buffer
		is.NoErr(printJSON(&want, map[string]any{"usage": rows[:n]}))
		j := &usageJSON{w: bufio.NewWriter(&got)}
		for _, u := range rows[:n] {
			is.NoErr(j.row(u))
		}
		is.NoErr(j.end(""))
		is.Equal(got.String(), want.String()) // the same bytes
	}
}

// TestUsageTableIsTabwriters: the table that usage keeps as text is the one
// text/tabwriter prints of the same rows.
func TestUsageTableIsTabwriters(t *testing.T) {
	is := is.New(t)
	rows := []ledger.ServiceUsage{
		{Service: "api", Allocations: 12, Holds: 12, TotalHold: ledger.Duration(90 * time.Minute), LongestHold: ledger.Duration(time.Hour), LongestPort: 8001, Releases: map[string]int{"done": 11, "": 1}},
		{Service: "café-überlang-name", Holds: 3, ImportedHolds: 2, HeldAtEnd: 1, Releases: map[string]int{}},
		{Service: "w\tith\nbreaks\xff", Allocations: 1234567, Holds: 1, TotalHold: ledger.Duration(3 * 24 * time.Hour), LongestPort: 8100, Releases: map[string]int{"process exited": 1}},
		{Service: "z", Releases: map[string]int{"crashed, twice": 2}},
	}
	for n := range len(rows) + 1 {
		var want bytes.Buffer
		tw := tabwriter.NewWriter(&want, 0, 4, 2, ' ', 0)
		if n > 0 {
			fmt.Fprintln(tw, "SERVICE\tALLOCATIONS\tTOTAL HELD\tLONGEST\tHELD AT END\tRELEASES")
		}
		for _, u := range rows[:n] {
			longest := "-"
			if u.LongestPort != 0 {
				longest = fmt.Sprintf("%s (port %d)", round(u.LongestHold), u.LongestPort)
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%d\t%s\n", safe(u.Service)+imported(u), u.Allocations, round(u.TotalHold), longest, u.HeldAtEnd, reasons(u.Releases))
		}
		is.NoErr(tw.Flush())
		if n == 0 {
			want.WriteString("No allocations in the window.\n")
		}
		var got bytes.Buffer
		is.NoErr(printUsageTable(&got, rows[:n]))
		is.Equal(got.String(), want.String()) // the same table
	}
}
