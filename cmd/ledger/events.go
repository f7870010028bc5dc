package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os/signal"
	"syscall"

	"github.com/oklog/ulid/v2"
	"github.com/portledger/portledger/ledger"
)

func runEvents(ctx context.Context, e *env, args []string) error {
	var c common
	var after string
	var follow bool
	var format string
	fs := newFlags(e, "events", "events [--after ULID] [--follow] [--format json|text]", `
Print events, oldest first: all of them, or those after the event --after.
With --follow, print them and then keep printing new events as they commit
(needs 'ledger serve'); stop with Ctrl-C. --format json (the default) prints
one JSON object per line, for scripts; --format text prints one line per
event for people, as 'ledger history' does.`, &c, false)
	fs.StringVar(&after, "after", "", "print only events after this event ULID")
	fs.BoolVar(&follow, "follow", false, "then keep printing new events (through the daemon)")
	fs.StringVar(&format, "format", "json", "json (one object per line) or text (one line per event, for people)")
	if err := parse(e, fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("events takes no arguments, got %q", fs.Args())
	}
	var print func(ledger.Event) error
	switch format {
	case "json":
		enc := json.NewEncoder(e.stdout)
		print = func(ev ledger.Event) error { return enc.Encode(ev) }
	case "text":
		print = func(ev ledger.Event) error {
			_, err := fmt.Fprintf(e.stdout, "%s  %-13s %5d  %s\n", ev.At.Local().Format("2006-01-02 15:04:05.000"), ev.Type.Action(), ev.Port, describe(ev))
			return err
		}
	default:
		return usagef("--format %q: want json or text", format)
	}
	var afterID ulid.ULID
	if after != "" {
		id, err := ulid.ParseStrict(after)
		if err != nil {
			return usagef("--after %q: want an event ULID", after)
		}
		afterID = id
	}
	c.reads = true
	b, err := connect(ctx, &c)
	if err != nil {
		return err
	}
	if follow && b.local != nil {
		// Following in this process would hold the ledger file, and
		// with it every other ledger command, for as long as it runs.
		return closeWith(b, ledger.Errorf(ledger.EINVALID, "--follow needs a running daemon (`ledger serve`)"))
	}
	q := ledger.HistoryQuery{}
	if !afterID.IsZero() {
		q.Since = afterID
	}
	evs, err := b.History(ctx, q)
	if err != nil || !follow {
		if err = closeWith(b, err); err != nil {
			return err
		}
	}
	last := afterID
	for _, ev := range evs {
		if ev.ID == afterID {
			continue
		}
		if err := print(ev); err != nil {
			return err
		}
		last = ev.ID
	}
	if !follow {
		return nil
	}
	// The past is printed; go on from its last event, so nothing committed
	// meanwhile is missed or printed twice.
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return closeWith(b, followEvents(ctx, b.events, last, print))
}

// followEvents prints every event after after, then each new one as it commits,
// until ctx ends (nil) or the subscription ends (its error).
func followEvents(ctx context.Context, src ledger.EventService, after ulid.ULID, print func(ledger.Event) error) error {
	sub, err := src.Subscribe(ctx, ledger.SubscribeRequest{After: after})
	if err != nil {
		return err
	}
	defer sub.Close()
	for ev := range sub.C() {
		if err := print(ev); err != nil {
			return err
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	return sub.Err()
}
