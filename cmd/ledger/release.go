package main

import (
	"context"
	"fmt"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/portledger/portledger/commands"
	"github.com/portledger/portledger/ledger"
)

func runRelease(ctx context.Context, e *env, args []string) error {
	var c common
	var req ledger.ReleaseRequest
	var force bool
	fs := newFlags(e, "release", "release PORT [--reason R] [--force] [--json]", `
Free PORT. The release is an event: history keeps who held the port, for how
long, and why it was released.

A port whose holder's process is alive while the port is listened on is in
use: release says who listens and frees it only with --force (exit status 1
without), so that a script does not pull a port from under a live service.`, &c, true)
	fs.BoolVar(&force, "force", false, "release even though the holder's process is alive and the port is listened on")
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
	if !force {
		if err := inUse(ctx, b, port); err != nil {
			b.Close()
			return err
		}
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

// inUse returns an error naming the holder of port when its process is alive
// and the port is listened on: the service still serves.
func inUse(ctx context.Context, b *backend, port int) error {
	a, err := b.Allocation(ctx, port, ulid.Zero)
	if err != nil || a.PID <= 0 {
		return nil // a free port or a holder without a process: Release says the rest
	}
	info, err := commands.LookupProcess(a.PID)
	if err != nil {
		return nil // the process is gone
	}
	if a.PIDStartedAt != nil && info.StartedAt != int64(*a.PIDStartedAt) {
		return nil // the PID names another process now
	}
	if commands.ProbePort(port) == nil {
		return nil // nothing listens
	}
	cmd := info.Cmdline
	if cmd == "" {
		cmd = "?"
	}
	return fmt.Errorf("port %d is in use: %s holds it, and its process %d (%s) is alive while the port is listened on; stop the service, or pass --force to release it anyway",
		port, safe(a.ServiceName), a.PID, safe(cmd))
}
