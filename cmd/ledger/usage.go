package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/portledger/portledger/ledger"
)

func runUsage(ctx context.Context, e *env, args []string) error {
	var c common
	var q ledger.UsageQuery
	var since, until string
	fs := newFlags(e, "usage", "usage [--since T] [--until T] [--service S] [--json]", `
Show how each service used its ports over a window: allocations made, how
long it held ports in all and at the longest (holds are cut at the window's
edges), ports still held at the end, and releases by reason. Times are RFC
3339, YYYY-MM-DD[ HH:MM[:SS]] (local time), an event ULID, or a duration ago
(90m, 2h, 7d). --json prints {"usage": [...]}.`, &c, true)
	fs.StringVar(&since, "since", "", "start of the window (default: the first event)")
	fs.StringVar(&until, "until", "", "end of the window (default: now)")
	fs.StringVar(&q.Service, "service", "", "only this service")
	if err := parse(e, fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("usage takes no arguments, got %q", fs.Args())
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
	us, err := b.Usage(ctx, q)
	if err = closeWith(b, err); err != nil {
		return err
	}
	if c.json {
		if us == nil {
			us = []ledger.ServiceUsage{}
		}
		return printJSON(e.stdout, map[string]any{"usage": us})
	}
	return printUsageTable(e.stdout, us)
}

func printUsageTable(w io.Writer, us []ledger.ServiceUsage) error {
	if len(us) == 0 {
		_, err := fmt.Fprintln(w, "No allocations in the window.")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tALLOCATIONS\tTOTAL HELD\tLONGEST\tHELD AT END\tRELEASES")
	for _, u := range us {
		longest := "-"
		if u.LongestPort != 0 {
			longest = fmt.Sprintf("%s (port %d)", round(u.LongestHold), u.LongestPort)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%d\t%s\n", safe(u.Service)+imported(u), u.Allocations, round(u.TotalHold), longest, u.HeldAtEnd, reasons(u.Releases))
	}
	return tw.Flush()
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
