package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/portledger/portledger/httpapi"
	"github.com/portledger/portledger/ledger"
)

// The daemon's API answers usage in bounded memory through UsageEach, on
// both sides of the CLI.
var (
	_ httpapi.UsageStreamer = filesStatus{}
	_ httpapi.UsageStreamer = importer{}
	_ httpapi.UsageStreamer = (*httpapi.Client)(nil)
)

func runUsage(ctx context.Context, e *env, args []string) error {
	var c common
	var q ledger.UsageQuery
	var since, until, after string
	var limit int
	fs := newFlags(e, "usage", "usage [--since T] [--until T] [--service S] [--limit N [--after S]] [--json]", `
Show how each service used its ports over a window: allocations made, how
long it held ports in all and at the longest (holds are cut at the window's
edges), ports still held at the end, and releases by reason, by service
name. Times are RFC 3339, YYYY-MM-DD[ HH:MM[:SS]] (local time), an event
ULID, or a duration ago (90m, 2h, 7d). --json prints {"usage": [...]}.

The daemon answers a window of any size in bounded memory; --json prints
each service as it is read, the table once its widest cells are known.
--limit N prints one page of N services; when more follow, the next
page's --after is printed on stderr (and as "next" with --json).`, &c, true)
	fs.StringVar(&since, "since", "", "start of the window (default: the first event)")
	fs.StringVar(&until, "until", "", "end of the window (default: now)")
	fs.StringVar(&q.Service, "service", "", "only this service")
	fs.IntVar(&limit, "limit", 0, "print at most N services, a page (default: every one)")
	fs.StringVar(&after, "after", "", "start the page after this service name (the last of the page before)")
	if err := parse(e, fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("usage takes no arguments, got %q", fs.Args())
	}
	if limit < 0 {
		return usagef("--limit %d: want a number >= 0", limit)
	}
	var err error
	if q.Since, q.Until, err = parseWindow(since, until); err != nil {
		return err
	}
	c.reads = true
	b, err := connect(ctx, &c)
	if err != nil {
		return err
	}
	var out usageOutput = &usageTable{w: e.stdout}
	if c.json {
		out = &usageJSON{w: bufio.NewWriter(e.stdout)}
	}
	next, err := httpapi.UsageEach(ctx, b.Service, q, after, limit, out.row)
	if err = closeWith(b, err); err != nil {
		return err
	}
	if err := out.end(next); err != nil {
		return err
	}
	if next != "" {
		c.note("more services follow: --after %s for the next page", safe(next))
	}
	return nil
}

// usageOutput prints usage a service at a time.
type usageOutput interface {
	row(ledger.ServiceUsage) error
	end(next string) error
}

// usageJSON prints {"usage": [...]} as printJSON prints it whole, and
// "next" after the list when a page stopped with services left.
type usageJSON struct {
	w *bufio.Writer
	n int
}

func (j *usageJSON) row(u ledger.ServiceUsage) error {
	b, err := json.MarshalIndent(u, "    ", "  ")
	if err != nil {
		return err
	}
	if j.n == 0 {
		j.w.WriteString("{\n  \"usage\": [\n    ")
	} else {
		j.w.WriteString(",\n    ")
	}
	j.n++
	_, err = j.w.Write(b)
	return err
}

func (j *usageJSON) end(next string) error {
	if j.n == 0 {
		j.w.WriteString("{\n  \"usage\": []")
	} else {
		j.w.WriteString("\n  ]")
	}
	if next != "" {
		b, err := json.Marshal(next)
		if err != nil {
			return err
		}
		j.w.WriteString(",\n  \"next\": ")
		j.w.Write(b)
	}
	j.w.WriteString("\n}\n")
	return j.w.Flush()
}

// usageTable prints the table. Its columns are as wide as their widest
// cell, as text/tabwriter makes them, so the rows are kept until the end:
// as their text alone, in chunks, about a quarter of what tabwriter holds
// for a million rows (its cells and a buffer that doubles).
type usageTable struct {
	w      io.Writer
	chunks [][]byte // the cells, each ended by a tab, a row's last by a newline
	widths [len(usageHeader) - 1]int
	rows   int
}

// usageHeader is the table's first row.
var usageHeader = [...]string{"SERVICE", "ALLOCATIONS", "TOTAL HELD", "LONGEST", "HELD AT END", "RELEASES"}

// usageChunk is the size of the table's chunks of text.
const usageChunk = 1 << 20

func (t *usageTable) row(u ledger.ServiceUsage) error {
	if t.rows == 0 {
		t.add(usageHeader)
	}
	longest := "-"
	if u.LongestPort != 0 {
		longest = fmt.Sprintf("%s (port %d)", round(u.LongestHold), u.LongestPort)
	}
	t.add([len(usageHeader)]string{safe(u.Service) + imported(u), strconv.Itoa(u.Allocations), round(u.TotalHold), longest, strconv.Itoa(u.HeldAtEnd), reasons(u.Releases)})
	return nil
}

func (t *usageTable) add(cells [len(usageHeader)]string) {
	n := 0
	for j, c := range cells {
		n += len(c) + 1
		if j < len(t.widths) {
			t.widths[j] = max(t.widths[j], utf8.RuneCountInString(c))
		}
	}
	k := len(t.chunks) - 1
	if k < 0 || len(t.chunks[k])+n > cap(t.chunks[k]) {
		t.chunks = append(t.chunks, make([]byte, 0, max(usageChunk, n)))
		k++
	}
	for j, c := range cells {
		t.chunks[k] = append(t.chunks[k], c...)
		if j < len(t.widths) {
			t.chunks[k] = append(t.chunks[k], '\t')
		} else {
			t.chunks[k] = append(t.chunks[k], '\n')
		}
	}
	t.rows++
}

// end prints the rows, each cell but the last padded with spaces to its
// column's width and two more.
func (t *usageTable) end(string) error {
	if t.rows == 0 {
		_, err := fmt.Fprintln(t.w, "No allocations in the window.")
		return err
	}
	w := bufio.NewWriterSize(t.w, 64<<10)
	spaces := []byte(strings.Repeat(" ", slices.Max(t.widths[:])+2))
	for _, chunk := range t.chunks {
		j := 0
		for len(chunk) > 0 {
			i := bytes.IndexAny(chunk, "\t\n")
			cell := chunk[:i]
			w.Write(cell)
			if chunk[i] == '\t' {
				w.Write(spaces[:t.widths[j]+2-utf8.RuneCount(cell)])
				j++
			} else {
				w.WriteByte('\n')
				j = 0
			}
			chunk = chunk[i+1:]
		}
	}
	t.chunks = nil
	return w.Flush()
}

// printUsageTable prints the table of us.
func printUsageTable(w io.Writer, us []ledger.ServiceUsage) error {
	t := &usageTable{w: w}
	for _, u := range us {
		if err := t.row(u); err != nil {
			return err
		}
	}
	return t.end("")
}

func round(d ledger.Duration) string {
	return human(time.Duration(d))
}

// reasons renders releases by reason, most frequent first.
func reasons(m map[string]int) string {
	if len(m) == 0 {
		return "-"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int {
		if m[a] != m[b] {
			return m[b] - m[a]
		}
		return strings.Compare(a, b)
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		name := k
		if name == "" {
			name = "(no reason)"
		}
		parts[i] = fmt.Sprintf("%d %s", m[k], safe(name))
	}
	return strings.Join(parts, ", ")
}

// imported marks a service whose holds were partly imported.
func imported(u ledger.ServiceUsage) string {
	if u.ImportedHolds == 0 {
		return ""
	}
	return fmt.Sprintf(" (%d of %d holds imported)", u.ImportedHolds, u.Holds)
}
