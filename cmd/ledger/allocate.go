package main

import (
	"context"
	"fmt"

	"github.com/portledger/portledger/ledger"
)

func runAllocate(ctx context.Context, e *env, args []string) error {
	var c common
	var req ledger.AllocateRequest
	var lease float64
	fs := newFlags(e, "allocate", "allocate --service NAME [--started-by S] [--purpose P] [--pid N] [--port P] [--health URL] [--proto tcp|udp|both] [--json]", `
Allocate a port for a service and print it, so that PORT=$(ledger allocate --service api)
works. The port is the one the service held last if that is free, else the
lowest free port of the range; one that another process listens on is never
handed out. With --port, that port or an error naming its holder. --proto udp asks
for a port free for UDP, --proto both for TCP and UDP.`, &c, true)
	fs.StringVar(&req.ServiceName, "service", e.getenv("LEDGER_SERVICE"), "service name: 1-128 of A-Z a-z 0-9 . _ - (env LEDGER_SERVICE)")
	fs.StringVar(&req.StartedBy, "started-by", "cli", "who started the service")
	fs.StringVar(&req.Purpose, "purpose", "", "why the service runs")
	fs.IntVar(&req.PID, "pid", 0, "PID of the process that will hold the port")
	fs.IntVar(&req.Port, "port", 0, "preferred port (refused if taken)")
	fs.StringVar(&req.HealthURL, "health", "", "health URL the watchdog probes (loopback only), e.g. http://127.0.0.1:8000/health")
	fs.StringVar((*string)(&req.Proto), "proto", string(ledger.ProtoTCP), "which sockets must be free on the port: tcp, udp, or both (HTTP/3, QUIC)")
	fs.Float64Var(&lease, "lease", 0, "seconds the port is kept without a PID or a listener (0: the daemon's default)")
	if err := parse(e, fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("allocate takes no arguments, got %q", fs.Args())
	}
	if req.ServiceName == "" {
		return usagef("allocate needs --service NAME (or LEDGER_SERVICE)")
	}
	req.Lease = lease
	if !req.Proto.Valid() {
		return usagef("--proto %q: want tcp, udp or both", req.Proto)
	}
	b, err := connect(ctx, &c)
	if err != nil {
		return err
	}
	a, err := b.Allocate(ctx, req)
	if cerr := b.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if c.json {
		return printJSON(e.stdout, a)
	}
	if _, err = fmt.Fprintln(e.stdout, a.Port); err != nil {
		return err
	}
	noteEnvRange(&c, a.Port)
	return nil
}
