package main

import (
	"context"
	"fmt"
	"strconv"
)

func runRegisterPID(ctx context.Context, e *env, args []string) error {
	var c common
	fs := newFlags(e, "register-pid", "register-pid PORT PID [--json]", `
Record the process that holds PORT. Its start time is recorded with it, so a
later process that reuses the PID is not taken for the service.`, &c, true)
	// Flags may follow the arguments: `ledger register-pid 8000 1234 --data D`.
	pos, err := parseInterleaved(e, fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return usagef("register-pid needs PORT and PID, got %q", pos)
	}
	port, err := parsePort(pos[0])
	if err != nil {
		return err
	}
	pid, err := strconv.Atoi(pos[1])
	if err != nil {
		return usagef("pid %q: want a number", pos[1])
	}
	b, err := connect(ctx, &c)
	if err != nil {
		return err
	}
	a, err := b.RegisterPID(ctx, port, pid)
	if err = closeWith(b, err); err != nil {
		return err
	}
	if c.json {
		return printJSON(e.stdout, a)
	}
	_, err = fmt.Fprintf(e.stdout, "registered pid %d for port %d (%s)\n", a.PID, a.Port, safe(a.ServiceName))
	return err
}
