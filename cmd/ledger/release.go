package main

import (
	"context"
	"fmt"
	"time"

	"github.com/portledger/portledger/ledger"
)

func runRelease(ctx context.Context, e *env, args []string) error {
	var c common
	var req ledger.ReleaseRequest
	fs := newFlags(e, "release", "release PORT [--reason R] [--json]", `
Free PORT. The release is an event: history keeps who held the port, for how
long, and why it was released.`, &c, true)
	fs.StringVar(&req.Reason, "reason", "released", "why the port is released")
	fs.StringVar(&req.ReleasedBy, "released-by", "cli", "who releases it")
	pos, err := parseInterleaved(e, fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("release needs one PORT, got %q", pos)
	}
	port, err := parsePort(pos[0])
	if err != nil {
		return err
	}
	req.Port = port
	b, err := connect(ctx, &c)
	if err != nil {
		return err
	}
	ev, err := b.Release(ctx, req)
	if err = closeWith(b, err); err != nil {
		return err
	}
	if c.json {
		return printJSON(e.stdout, ev)
	}
	_, err = fmt.Fprintf(e.stdout, "released port %d after %s\n", port, human(time.Duration(ev.Released.DurationMS)*time.Millisecond))
	return err
}
