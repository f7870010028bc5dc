package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/portledger/portledger/ledger"
)

func runWho(ctx context.Context, e *env, args []string) error {
	var c common
	var at string
	fs := newFlags(e, "who", "who PORT [--at T] [--json]", `
Say who held a port: service, pid, purpose, since when, and when and why it
was released (or that it is still held). When the port was free, say who
held it last before and who held it next after. --at asks about a moment:
RFC 3339, YYYY-MM-DD[ HH:MM[:SS]] (local time), an event ULID, or a duration
ago (90m, 2h, 7d); an event at that very moment counts as done.`, &c, true)
	fs.StringVar(&at, "at", "", "the moment to ask about (default: now)")
	// Flags may come after the port: `ledger who 8003 --at 2h`.
	var port int
	var err error
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		if port, err = parsePort(args[0]); err != nil {
			return err
		}
		args = args[1:]
	}
	if err := parse(e, fs, args); err != nil {
		return err
	}
	switch {
	case port == 0 && fs.NArg() == 1:
		if port, err = parsePort(fs.Arg(0)); err != nil {
			return err
		}
	case port == 0 || fs.NArg() > 0:
		return usagef("who takes one port, e.g. ledger who 8003 --at 2h")
	}
	point, err := ledger.ParsePoint(at, time.Now())
	if err != nil {
		return usagef("--at: %s", ledger.ErrorMessage(err))
	}
	c.reads = true
	b, err := connect(ctx, &c)
	if err != nil {
		return err
	}
	ans, err := b.Who(ctx, port, point)
	var st ledger.Status
	if err == nil {
		st, err = b.Status(ctx, point)
	}
	if err = closeWith(b, err); err != nil {
		return err
	}
	r, rerr := ledger.ParseRange(st.PortManager.PortRange)
	outside := rerr == nil && !r.Contains(port)
	if c.json {
		if outside {
			// Scripts are told too: the port is not the ledger's to hand out.
			return printJSON(e.stdout, struct {
				ledger.WhoAnswer
				OutsideRange string `json:"outside_range"`
			}{ans, r.String()})
		}
		return printJSON(e.stdout, ans)
	}
	if outside {
		when := "now"
		if at != "" {
			when = "at " + localTime(ans.At)
		}
		fmt.Fprintf(e.stdout, "Port %d is outside the managed range %s %s: the ledger does not hand it out (allocate --port %d would be refused).\n", port, r, when, port)
		if ans.Holder == nil && ans.Previous == nil && ans.Next == nil {
			return nil
		}
		fmt.Fprintln(e.stdout)
	}
	return printWho(e.stdout, ans, at)
}

func printWho(w io.Writer, ans ledger.WhoAnswer, at string) error {
	when := "now"
	if at != "" {
		when = "at " + localTime(ans.At)
	}
	if ans.AsOf.IsZero() {
		fmt.Fprintf(w, "Port %d %s: free (before the first event: the ledger was empty).\n", ans.Port, when)
	}
	switch {
	case ans.Holder != nil:
		fmt.Fprintf(w, "Port %d %s: held by %s.\n", ans.Port, when, safe(ans.Holder.Allocation.ServiceName))
		printTenure(w, ans.Holder)
	case !ans.AsOf.IsZero():
		fmt.Fprintf(w, "Port %d %s: free.\n", ans.Port, when)
	}
	if ans.Previous != nil {
		fmt.Fprintf(w, "\nHeld last before by %s.\n", safe(ans.Previous.Allocation.ServiceName))
		printTenure(w, ans.Previous)
	} else if ans.Holder == nil && !ans.AsOf.IsZero() {
		fmt.Fprintln(w, "\nNobody held it before.")
	}
	if ans.Next != nil {
		fmt.Fprintf(w, "\nHeld next after by %s.\n", safe(ans.Next.Allocation.ServiceName))
		printTenure(w, ans.Next)
	} else if ans.Holder == nil && at != "" {
		fmt.Fprintln(w, "\nNobody held it after.")
	}
	return nil
}

// printTenure prints one allocation and its end.
func printTenure(w io.Writer, t *ledger.Tenure) {
	a := t.Allocation
	pid := "-"
	if a.PID != 0 {
		pid = strconv.Itoa(a.PID)
	}
	fmt.Fprintf(w, "  service:    %s\n", safe(a.ServiceName))
	if a.StartedBy != "" {
		fmt.Fprintf(w, "  started by: %s\n", safe(a.StartedBy))
	}
	fmt.Fprintf(w, "  pid:        %s\n", pid)
	if a.Purpose != "" {
		fmt.Fprintf(w, "  purpose:    %s\n", safe(a.Purpose))
	}
	fmt.Fprintf(w, "  health:     %s\n", a.HealthStatus)
	fmt.Fprintf(w, "  since:      %s (event %s)\n", localTime(a.AllocatedAt), a.EventID)
	if a.ImportedFrom != "" {
		fmt.Fprintf(w, "  imported:   from %s (the original port manager's record, not lived by this ledger)\n", safe(a.ImportedFrom))
	}
	if t.Release == nil {
		fmt.Fprintln(w, "  released:   still held")
		return
	}
	r := t.Release
	reason := safe(r.Reason)
	if reason == "" {
		reason = "no reason given"
	}
	by := ""
	if r.ReleasedBy != "" {
		by = " by " + safe(r.ReleasedBy)
	}
	fmt.Fprintf(w, "  released:   %s%s: %s (held %s)\n", localTime(r.At), by, reason,
		human(time.Duration(r.Duration)))
}

// localTime renders a moment for people.
func localTime(t time.Time) string {
	return t.Local().Format("2006-01-02 15:04:05.000 MST")
}
