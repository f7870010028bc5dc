package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/portledger/portledger/ledger"
	"github.com/portledger/portledger/watchdog"
)

func runStatus(ctx context.Context, e *env, args []string) error {
	var c common
	var at string
	fs := newFlags(e, "status", "status [--at T] [--json]", `
Show the registry: the range, how many ports are taken, and who holds each
one (port, service, pid, health, since, purpose). --json prints the REST
status object {"port_manager": {...}, "watchdog": {...}}.
--at shows the registry as it was at a moment: RFC 3339, YYYY-MM-DD[ HH:MM[:SS]]
(local time), an event ULID, or a duration ago (90m, 2h, 7d).`, &c, true)
	fs.StringVar(&at, "at", "", "show the registry as of this moment")
	if err := parse(e, fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("status takes no arguments, got %q", fs.Args())
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
	st, err := b.Status(ctx, point)
	if err = closeWith(b, err); err != nil {
		return err
	}
	if c.json {
		return printJSON(e.stdout, st)
	}
	var gone map[int]bool
	if at == "" {
		gone = goneListeners(ctx, st.PortManager.Conflicts)
	}
	return printStatus(e.stdout, st, at, gone)
}

// goneListeners returns the ports of the recorded foreign listeners that
// nothing listens on now: the ledger keeps a foreign listener until its
// port is allocated, so the table says which of them are gone.
func goneListeners(ctx context.Context, conflicts []ledger.Conflict) map[int]bool {
	gone := make(map[int]bool)
	for _, x := range conflicts {
		socks, err := watchdog.PortSockets(ctx, x.Port)
		if err != nil {
			return nil // cannot tell: print them as recorded
		}
		if !slices.ContainsFunc(socks, func(s watchdog.Socket) bool { return s.Proto == "tcp" }) {
			gone[x.Port] = true
		}
	}
	return gone
}

// printStatus prints the status table; gone names the foreign listeners'
// ports that nothing listens on now (nil for the past).
func printStatus(w io.Writer, st ledger.Status, at string, gone map[int]bool) error {
	pm := st.PortManager
	when := "now"
	if at != "" {
		when = "at " + at
		if pm.AsOf == ([16]byte{}) {
			when += " (before the first event: the ledger was empty)"
		}
	}
	fmt.Fprintf(w, "Port range %s: %d ports, %d allocated, %d available (%s)\n",
		pm.PortRange, pm.TotalPorts, pm.AllocatedPorts, pm.AvailablePorts, when)
	if len(pm.Skipped) > 0 {
		fmt.Fprintf(w, "Skipped: %s (browsers refuse these ports; ask for one with allocate --port)\n", ledger.FormatPorts(pm.Skipped))
	}
	if pm.Chain != nil {
		fmt.Fprintf(w, "Chain head: link %d, %s (event %s)\n", pm.Chain.Seq, pm.Chain.Link, pm.Chain.ID)
	}
	wd := st.Watchdog
	switch {
	case at != "":
		// The watchdog's counters are of now: they say nothing of the past.
	case wd.Running:
		fmt.Fprintf(w, "Watchdog: running, every %gs, %d checks, %d issues, %d ports monitored\n",
			wd.CheckInterval, wd.ChecksPerformed, wd.IssuesDetected, wd.MonitoredPorts)
	default:
		fmt.Fprintln(w, "Watchdog: not running (start it with `ledger serve`)")
	}
	if f := st.Files; f != nil && f.CatchingUp {
		upTo := "nothing yet"
		if !f.UpTo.IsZero() {
			upTo = "events up to " + ledger.IDTime(f.UpTo).Local().Format("2006-01-02 15:04:05")
		}
		fmt.Fprintf(w, "Projection files: catching up behind the log (%d events written so far; they hold %s); the log answers meanwhile\n", f.Written, upTo)
	}
	if f := st.Fleet; f != nil {
		state := "connected"
		if !f.Connected {
			state = "NOT connected"
			if f.LastError != "" {
				state += " (" + safe(f.LastError) + ")"
			}
		}
		fmt.Fprintf(w, "Fleet: host %s on %s, %s, publishing lag %d events / %.1fs\n", f.Host, f.URL, state, f.LagEvents, f.LagSeconds)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if len(pm.Allocations) == 0 {
		fmt.Fprintln(tw, "No ports allocated.")
	} else {
		fmt.Fprintln(tw, "PORT\tSERVICE\tPID\tHEALTH\tSINCE\tPURPOSE\tCOMMAND")
	}
	for _, a := range pm.Allocations {
		pid := "-"
		if a.PID != 0 {
			pid = strconv.Itoa(a.PID)
		}
		purpose := safe(a.Purpose)
		if a.ImportedFrom != "" {
			purpose = "[imported from " + safe(a.ImportedFrom) + "] " + purpose
		}
		command := "-"
		if a.Cmdline != "" {
			command = safe(clip(a.Cmdline, statusCommandWidth))
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", a.Port, safe(a.ServiceName), pid, a.HealthStatus,
			a.AllocatedAt.Local().Format("2006-01-02 15:04:05"), purpose, command)
	}
	if len(pm.Conflicts) > 0 {
		fmt.Fprintln(tw)
		fmt.Fprintln(tw, "FOREIGN LISTENERS IN THE RANGE\t\t\t\t\t")
		if len(pm.Allocations) == 0 {
			fmt.Fprintln(tw, "PORT\t\tPID\t\tSEEN\tCOMMAND")
		}
		for _, x := range pm.Conflicts {
			seen := x.DetectedAt.Local().Format("2006-01-02 15:04:05")
			if gone[x.Port] {
				seen += " (gone: nothing listens now)"
			}
			fmt.Fprintf(tw, "%d\t(not allocated)\t%d\t\t%s\t%s\n", x.Port, x.PID, seen, safe(x.Command))
		}
	}
	return tw.Flush()
}

// statusCommandWidth is how much of a holder's command line the status
// table shows; --json has all of it.
const statusCommandWidth = 60

// clip shortens s to at most n runes, marking the cut with "...".
func clip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-3]) + "..."
}
