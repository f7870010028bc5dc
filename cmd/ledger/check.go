package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/portledger/portledger/ledger"
)

func runCheck(ctx context.Context, e *env, args []string) error {
	var c common
	var failures int
	fs := newFlags(e, "check", "check [--failures N] [--json]", `
Run one watchdog sweep now: for every allocation, is its process alive, is
its port listening, does its health URL answer. Transitions and releases of
dead services are recorded as events.

Through the daemon when one runs: its watchdog keeps the count of failed
checks in a row between sweeps, and concludes after serve's --failures.
Without a daemon the check is one-shot: nothing remembers a failed check
until the next run, so it concludes at once, after --failures checks of
this run (default 1): a holder whose process is plainly gone is released
now, with the reason. The first line says which of the two it did.`, &c, true)
	fs.IntVar(&failures, "failures", 1, "one-shot check without a daemon: failed checks before a conclusion (the daemon uses its own)")
	if err := parse(e, fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("check takes no arguments, got %q", fs.Args())
	}
	if failures < 1 {
		return usagef("--failures must be at least 1")
	}
	b, err := connect(ctx, &c)
	if err != nil {
		return err
	}
	out := checkResult{Mode: "one-shot", Failures: failures}
	if b.client != nil {
		if flagSet(fs, "failures") {
			b.Close()
			return usagef("--failures is for a one-shot check: a daemon answers, and its watchdog concludes after serve's --failures")
		}
		out.Mode, out.Failures = "daemon", 0
	}
	out.SweepResult, err = b.sweep(ctx, failures)
	if err = closeWith(b, err); err != nil {
		return err
	}
	if c.json {
		return printJSON(e.stdout, out)
	}
	if out.Mode == "daemon" {
		fmt.Fprintln(e.stdout, "Through the daemon: its watchdog keeps failed checks between sweeps and concludes after serve's --failures.")
	} else {
		fmt.Fprintf(e.stdout, "One-shot check (no daemon): concluded after %d failed check(s) in this run (--failures %d); a holder whose process is gone is released now.\n", failures, failures)
	}
	return printSweep(e.stdout, out.SweepResult)
}

// checkResult is `ledger check --json`: the sweep, and who concluded it.
type checkResult struct {
	ledger.SweepResult
	// Mode is "daemon" (the daemon's watchdog, which keeps its counts
	// between sweeps) or "one-shot" (this process, which concludes after
	// Failures failed checks of this run).
	Mode     string `json:"mode"`
	Failures int    `json:"failures,omitempty"`
}

func printSweep(w io.Writer, res ledger.SweepResult) error {
	fmt.Fprintf(w, "Checked %d allocations in %.1f ms\n", len(res.Ports), res.DurationMS)
	if len(res.Ports) > 0 {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "PORT\tSERVICE\tPID\tALIVE\tLISTENING\tENDPOINT\tHEALTH\tNOTE")
		for _, p := range res.Ports {
			endpoint := safe(p.Endpoint)
			if endpoint == "" {
				endpoint = "-"
			}
			action := safe(p.Action)
			switch {
			case action != "" && p.Reason != "":
				action += ": " + safe(p.Reason)
			case p.Reason != "":
				action = safe(p.Reason)
			case action == "":
				action = "-"
			}
			fmt.Fprintf(tw, "%d\t%s\t%d\t%v\t%v\t%s\t%s\t%s\n", p.Port, safe(p.ServiceName), p.PID, p.Alive, p.Listening, endpoint, p.Health, action)
		}
		tw.Flush()
	}
	for _, x := range res.Conflicts {
		fmt.Fprintf(w, "foreign listener on %d: pid %d %s\n", x.Port, x.PID, safe(x.Command))
	}
	return nil
}
