package main

import (
	"context"
	"encoding/json"
	"os/signal"
	"syscall"

	"github.com/oklog/ulid/v2"
	"github.com/portledger/portledger/ledger"
)

func runEvents(ctx context.Context, e *env, args []string) error {
	var c common
	var after string
	var follow bool
	fs := newFlags(e, "events", "events [--after ULID] [--follow]", `
Print events as JSON lines, oldest first: all of them, or those after the
event --after. With --follow, keep printing new events as they commit (needs
'ledger serve'); stop with Ctrl-C.`, &c, false)
	fs.StringVar(&after, "after", "", "print only events after this event ULID")
	fs.BoolVar(&follow, "follow", false, "keep printing new events (through the daemon)")
	if err := parse(e, fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("events takes no arguments, got %q", fs.Args())
	}
	var afterID ulid.ULID
	if after != "" {
		id, err := ulid.ParseStrict(after)
		if err != nil {
			return usagef("--after %q: want an event ULID", after)
		}
		afterID = id
	}
	b, err := connect(ctx, &c)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(e.stdout)
	if follow {
		if b.local != nil {
			// Following in this process would hold the ledger file, and
			// with it every other ledger command, for as long as it runs.
			return closeWith(b, ledger.Errorf(ledger.EINVALID, "--follow needs a running daemon (`ledger serve`)"))
		}
		ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
		defer stop()
		return closeWith(b, followEvents(ctx, b.events, afterID, enc))
	}
	q := ledger.HistoryQuery{}
	if !afterID.IsZero() {
		q.Since = afterID
	}
	evs, err := b.History(ctx, q)
	if err = closeWith(b, err); err != nil {
		return err
	}
	for _, ev := range evs {
		if ev.ID == afterID {
			continue
		}
		if err := enc.Encode(ev); err != nil {
			return err
		}
	}
	return nil
}

// followEvents prints every event after after, then each new one as it commits,
// until ctx ends (nil) or the subscription ends (its error).
func followEvents(ctx context.Context, src ledger.EventService, after ulid.ULID, enc *json.Encoder) error {
	sub, err := src.Subscribe(ctx, ledger.SubscribeRequest{After: after})
	if err != nil {
		return err
	}
	defer sub.Close()
	for ev := range sub.C() {
		if err := enc.Encode(ev); err != nil {
			return err
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	return sub.Err()
}
