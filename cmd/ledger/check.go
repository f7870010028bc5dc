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
	fs := newFlags(e, "check", "check [--json]", `
Run one watchdog sweep now: for every allocation, is its process alive, is
its port listening, does its health URL answer. Transitions and releases of
dead services are recorded as events. Through the daemon when one runs.`, &c, true)
	if err := parse(e, fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("check takes no arguments, got %q", fs.Args())
	}
	b, err := connect(ctx, &c)
	if err != nil {
		return err
	}
	res, err := b.sweep(ctx)
	if err = closeWith(b, err); err != nil {
		return err
	}
	if c.json {
		return printJSON(e.stdout, res)
	}
	return printSweep(e.stdout, res)
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
