package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/portledger/portledger/ledger"
)

func runHistory(ctx context.Context, e *env, args []string) error {
	var c common
	var q ledger.HistoryQuery
	var since, until string
	fs := newFlags(e, "history", "history [--port P] [--service S] [--since T] [--until T] [--limit N] [--newest] [--json]", `
List events, oldest first (--newest: newest first): every allocate, register-pid, health change and
release, with who, when and why. Filter by port, by service, and by a time
window. Times are RFC 3339, YYYY-MM-DD[ HH:MM[:SS]] (local time), an event
ULID, or a duration ago (90m, 2h, 7d). --json prints {"events": [...]}.`, &c, true)
	fs.IntVar(&q.Port, "port", 0, "only events of this port")
	fs.StringVar(&q.Service, "service", "", "only events of this service")
	fs.StringVar(&since, "since", "", "only events at or after this moment")
	fs.StringVar(&until, "until", "", "only events at or before this moment")
	fs.IntVar(&q.Limit, "limit", 0, "at most this many events (0: all)")
	fs.BoolVar(&q.Newest, "newest", false, "newest first (with --limit: the newest N)")
	if err := parse(e, fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("history takes no arguments, got %q", fs.Args())
	}
	var err error
	if q.Since, q.Until, err = parseWindow(since, until); err != nil {
		return err
	}
	if q.Port != 0 {
		if err := ledger.CheckPort(q.Port); err != nil {
			return usagef("--%s", ledger.ErrorMessage(err))
		}
	}
	c.reads = true
	b, err := connect(ctx, &c)
	if err != nil {
		return err
	}
	evs, err := b.History(ctx, q)
	if err = closeWith(b, err); err != nil {
		return err
	}
	if c.json {
		return printJSON(e.stdout, map[string]any{"events": evs})
	}
	return printEvents(e.stdout, evs)
}

// printEvents prints one line per event.
func printEvents(w io.Writer, evs []ledger.Event) error {
	if len(evs) == 0 {
		_, err := fmt.Fprintln(w, "No events.")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tACTION\tPORT\tDETAILS")
	for _, e := range evs {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", e.At.Local().Format("2006-01-02 15:04:05.000"), e.Type.Action(), e.Port, describe(e))
	}
	return tw.Flush()
}

// describe renders an event's payload for people.
func describe(e ledger.Event) string {
	var parts []string
	add := func(format string, args ...any) { parts = append(parts, fmt.Sprintf(format, args...)) }
	switch {
	case e.Allocated != nil:
		p := e.Allocated
		add("service=%s", safe(p.ServiceName))
		if p.StartedBy != "" {
			add("started_by=%s", safe(p.StartedBy))
		}
		if p.PID != 0 {
			add("pid=%d", p.PID)
		}
		if p.Purpose != "" {
			add("purpose=\"%s\"", safe(p.Purpose))
		}
		if p.HealthURL != "" {
			add("health=%s", safe(p.HealthURL))
		}
	case e.PIDRegistered != nil:
		add("pid=%d", e.PIDRegistered.PID)
		if e.PIDRegistered.Cmdline != "" {
			add("cmd=\"%s\"", safe(e.PIDRegistered.Cmdline))
		}
	case e.HealthChanged != nil:
		p := e.HealthChanged
		add("%s -> %s", p.From, p.To)
		if p.Reason != "" {
			add("reason=\"%s\"", safe(p.Reason))
		}
	case e.StatsReported != nil:
		add("requests=%d errors=%d", e.StatsReported.RequestCount, e.StatsReported.ErrorCount)
	case e.Released != nil:
		p := e.Released
		add("reason=\"%s\"", safe(p.Reason))
		if p.ReleasedBy != "" {
			add("by=%s", safe(p.ReleasedBy))
		}
		add("held=%s", human(time.Duration(p.DurationMS)*time.Millisecond))
	case e.Conflict != nil:
		add("foreign listener pid=%d cmd=\"%s\"", e.Conflict.PID, safe(e.Conflict.Command))
	case e.RangeChanged != nil:
		add("%s -> %s", e.RangeChanged.From, e.RangeChanged.To)
	case e.ChainAccepted != nil:
		p := e.ChainAccepted
		add("breaks=%d first_link=%d", p.Breaks, p.Seq)
		if !p.EventID.IsZero() {
			add("event=%s", p.EventID)
		}
		add("problem=\"%s\"", safe(p.Problem))
		if p.AcceptedBy != "" {
			add("by=\"%s\"", safe(p.AcceptedBy))
		}
	}
	if e.Imported != nil {
		add("imported from %s", safe(e.Imported.String()))
	}
	if e.Actor != nil {
		add("actor=\"%s\"", safe(e.Actor.String()))
	}
	return strings.Join(parts, " ")
}
