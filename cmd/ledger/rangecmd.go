package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/oklog/ulid/v2"
	"github.com/portledger/portledger/ledger"
)

// The managed range lives in the log. Only `ledger serve --range` (at start)
// and `ledger range set` change it; a command run with --range or
// LEDGER_RANGE in its environment never does, so one person's shell profile
// does not move everyone's range.

func runRangeCmd(ctx context.Context, e *env, args []string) error {
	var c common
	fs := newFlags(e, "range", "range [set LO-HI] [--json]", `
Show the managed port range and its history: every change, when and from
what. 'ledger range set 9000-9100' changes it (refused while a live
allocation is outside the new range); that and 'ledger serve --range' at
start are the only ways the range changes. A range that overlaps the
kernel's ephemeral ports is refused unless --allow-ephemeral. --json prints
{"port_range": "LO-HI", "changes": [...events]}.`, &c, true)
	allowEphemeral := allowEphemeralFlag(e, fs)
	pos, err := parseInterleaved(e, fs, args)
	if err != nil {
		return err
	}
	switch {
	case len(pos) == 0:
		return showRange(ctx, e, &c)
	case pos[0] == "set" && len(pos) == 2:
		r, err := ledger.ParseRange(pos[1])
		if err != nil {
			return usagef("range set: %s", ledger.ErrorMessage(err))
		}
		if err := checkNewRange("range set", r, *allowEphemeral); err != nil {
			return err
		}
		return setRange(ctx, e, &c, r, *allowEphemeral)
	case pos[0] == "set":
		return usagef("range set needs one LO-HI, e.g. 'ledger range set 9000-9100'")
	}
	return usagef("range takes no arguments or 'set LO-HI', got %q", pos)
}

// rangeView is `ledger range --json`.
type rangeView struct {
	PortRange string         `json:"port_range"`
	Changes   []ledger.Event `json:"changes"`
}

func showRange(ctx context.Context, e *env, c *common) error {
	b, err := connect(ctx, c)
	if err != nil {
		return err
	}
	st, err := b.Status(ctx, ulid.Zero)
	var evs []ledger.Event
	if err == nil {
		evs, err = b.History(ctx, ledger.HistoryQuery{Type: ledger.EventRangeChanged})
	}
	if err = closeWith(b, err); err != nil {
		return err
	}
	v := rangeView{PortRange: st.PortManager.PortRange, Changes: evs}
	if c.json {
		return printJSON(e.stdout, v)
	}
	return printRange(e.stdout, v)
}

func printRange(w io.Writer, v rangeView) error {
	fmt.Fprintf(w, "Port range %s\n", v.PortRange)
	if len(v.Changes) == 0 {
		_, err := fmt.Fprintf(w, "Never changed: %s is the range of a new ledger.\n", ledger.DefaultRange)
		return err
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "WHEN\tFROM\tTO\tEVENT")
	for _, ev := range v.Changes {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", ev.At.Local().Format("2006-01-02 15:04:05"), ev.RangeChanged.From, ev.RangeChanged.To, ev.ID)
	}
	return tw.Flush()
}

func setRange(ctx context.Context, e *env, c *common, r ledger.Range, allowEphemeral bool) error {
	b, err := connect(ctx, c)
	if err != nil {
		return err
	}
	if b.client != nil {
		// The daemon checks the range again; this command checked it
		// with its own --allow-ephemeral, which the daemon is told.
		b.client.AllowEphemeral = allowEphemeral
	}
	before, err := b.Status(ctx, ulid.Zero)
	if err == nil {
		err = b.SetRange(ctx, r)
	}
	if err = closeWith(b, err); err != nil {
		return err
	}
	changed := before.PortManager.PortRange != r.String()
	if c.json {
		return printJSON(e.stdout, map[string]any{"port_range": r.String(), "from": before.PortManager.PortRange, "changed": changed})
	}
	if !changed {
		_, err = fmt.Fprintf(e.stdout, "the range is %s already: nothing recorded\n", r)
		return err
	}
	_, err = fmt.Fprintf(e.stdout, "range %s -> %s\n", before.PortManager.PortRange, r)
	return err
}

// noteEnvRange tells the person whose environment names another range than
// the ledger's that LEDGER_RANGE did not apply: only `ledger serve --range`
// and `ledger range set` change the range.
func noteEnvRange(c *common, port int) {
	if c.env == nil {
		return
	}
	s := c.env.getenv("LEDGER_RANGE")
	if s == "" {
		return
	}
	if r, err := ledger.ParseRange(s); err == nil && !r.Contains(port) {
		c.note("LEDGER_RANGE=%s is not the ledger's range, which only 'ledger range set %s' (or 'ledger serve --range') changes", s, s)
	}
}
