package main

import (
	"context"
	"fmt"
	"github.com/portledger/portledger/internal/flagdoc"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/portledger/portledger/fleet"
	"github.com/portledger/portledger/ledger"
)

const fleetHelp = `
Read the fleet: every host whose daemon publishes to the fleet's NATS
JetStream (ledger serve --fleet ... --host NAME). The live view comes from
the fleet's key-value buckets, the past from its stream, so these answer
about hosts that are down or gone.

  ledger fleet status [--at T]             every host: allocations, reachable, publishing lag
  ledger fleet who HOST:PORT [--at T]      who held a host's port then, since when, how it ended
  ledger fleet find SERVICE                where a service runs now: host, port, pid, health
  ledger fleet history [--host H] [--port P] [--service S] [--since T] [--until T]
  ledger fleet usage [--since T] [--until T] [--service S]   per host and service
  ledger fleet hosts                       the hosts on the stream and the span of their events

T is RFC 3339, YYYY-MM-DD[ HH:MM[:SS]] (local time), an event ULID, or a
duration ago (90m, 2h, 7d).`

func runFleet(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintf(e.stdout, "Usage: ledger fleet SUBCOMMAND [flags]\n%s\n\nFlags (of every fleet subcommand; 'ledger fleet SUBCOMMAND --help' adds its own):\n", fleetHelp)
		var ff fleetFlags
		var c common
		fs := newFlags(e, "fleet", "fleet", fleetHelp, &c, true)
		addFleetConnFlags(e, fs, &ff)
		fs.SetOutput(e.stdout)
		flagdoc.Print(fs.Output(), fs)
		if len(args) == 0 {
			return usagef("fleet needs a subcommand: status, who, find, history, usage or hosts")
		}
		return nil
	}
	sub, args := args[0], args[1:]
	var ff fleetFlags
	var c common
	var at, since, until, host, service string
	var port int
	fs := newFlags(e, "fleet "+sub, "fleet "+sub+" [flags]", fleetHelp, &c, true)
	addFleetConnFlags(e, fs, &ff)
	switch sub {
	case "status", "who":
		fs.StringVar(&at, "at", "", "the moment to show (default now)")
	case "history", "usage":
		fs.StringVar(&since, "since", "", "start of the window")
		fs.StringVar(&until, "until", "", "end of the window")
		fs.StringVar(&service, "service", "", "one service only")
		if sub == "history" {
			fs.StringVar(&host, "host", "", "one host only")
			fs.IntVar(&port, "port", 0, "one port only (with --host)")
		}
	case "find", "hosts":
	default:
		return usagef("unknown fleet subcommand %q: want status, who, find, history, usage or hosts", sub)
	}
	pos, err := parseInterleaved(e, fs, args)
	if err != nil {
		return err
	}
	if ff.conn.URL == "" {
		return usagef("which fleet? give --fleet nats://HUB:4222 or LEDGER_FLEET")
	}
	var whoHost string
	var whoPort int
	switch sub {
	case "who":
		if len(pos) != 1 {
			return usagef("fleet who takes HOST:PORT")
		}
		h, p, ok := strings.Cut(pos[0], ":")
		if !ok {
			return usagef("fleet who %q: want HOST:PORT", pos[0])
		}
		if err := fleet.ValidateHost(h); err != nil {
			return usagef("%s", ledger.ErrorMessage(err))
		}
		pn, err := parsePort(p)
		if err != nil {
			return err
		}
		whoHost, whoPort = h, pn
	case "find":
		if len(pos) != 1 {
			return usagef("fleet find takes one SERVICE")
		}
	default:
		if len(pos) > 0 {
			return usagef("fleet %s takes no arguments, got %q", sub, pos)
		}
	}
	var point ulid.ULID
	point, err = ledger.ParsePoint(at, time.Now())
	if err != nil {
		return usagef("--at: %s", ledger.ErrorMessage(err))
	}
	from, to, err := parseWindow(since, until)
	if err != nil {
		return err
	}
	ff.conn.Name = "portledger fleet " + sub
	nc, err := fleet.Connect(ff.conn)
	if err != nil {
		return err
	}
	defer nc.Close()
	r, err := fleet.NewReader(nc, nil)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out := func(v any, human func(io.Writer) error) error {
		if c.json {
			return printJSON(e.stdout, v)
		}
		return human(e.stdout)
	}
	switch sub {
	case "status":
		st, err := r.Status(ctx, point)
		if err != nil {
			return fleetErr(err)
		}
		return out(st, func(w io.Writer) error { return printFleetStatus(w, st, at) })
	case "who":
		ans, err := r.Who(ctx, whoHost, whoPort, point)
		if err != nil {
			return fleetErr(err)
		}
		return out(ans, func(w io.Writer) error {
			fmt.Fprintf(w, "Host %s:\n", whoHost)
			return printWho(w, ans, at)
		})
	case "find":
		ps, err := r.Find(ctx, pos[0])
		if err != nil {
			return fleetErr(err)
		}
		return out(map[string]any{"placements": ps}, func(w io.Writer) error { return printPlacements(w, pos[0], ps) })
	case "history":
		evs, err := r.History(ctx, ledger.FleetHistoryQuery{Host: host, Port: port, Service: service, Since: from, Until: to})
		if err != nil {
			return fleetErr(err)
		}
		return out(map[string]any{"events": evs}, func(w io.Writer) error { return printFleetEvents(w, evs) })
	case "usage":
		us, err := r.Usage(ctx, ledger.UsageQuery{Since: from, Until: to, Service: service})
		if err != nil {
			return fleetErr(err)
		}
		return out(map[string]any{"usage": us}, func(w io.Writer) error {
			if len(us) == 0 {
				_, err := fmt.Fprintln(w, "No allocations in the window.")
				return err
			}
			for i, hu := range us {
				if i > 0 {
					fmt.Fprintln(w)
				}
				fmt.Fprintf(w, "Host %s:\n", hu.Host)
				if err := printUsageTable(w, hu.Services); err != nil {
					return err
				}
			}
			return nil
		})
	case "hosts":
		hs, err := r.Hosts(ctx)
		if err != nil {
			return fleetErr(err)
		}
		return out(map[string]any{"hosts": hs}, func(w io.Writer) error {
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "HOST\tFIRST EVENT\tLAST EVENT")
			for _, h := range hs {
				fmt.Fprintf(tw, "%s\t%s\t%s\n", h.Host, localTime(ledger.IDTime(h.First)), localTime(ledger.IDTime(h.Last)))
			}
			return tw.Flush()
		})
	}
	return nil
}

// fleetErr says that a failed read is about the fleet.
func fleetErr(err error) error {
	if ledger.ErrorCode(err) != ledger.EINTERNAL {
		return err
	}
	return fmt.Errorf("fleet: %w", err)
}

func printFleetStatus(w io.Writer, st ledger.FleetView, at string) error {
	if len(st.Hosts) == 0 {
		msg := "No hosts in the fleet yet: start daemons with 'ledger serve --fleet URL --host NAME'."
		if at != "" {
			msg = "No host of the fleet had events yet at " + localTime(st.At) + "."
		}
		_, err := fmt.Fprintln(w, msg)
		return err
	}
	when := "now"
	if at != "" {
		when = "at " + localTime(st.At)
	}
	total := 0
	for _, h := range st.Hosts {
		total += len(h.Allocations)
	}
	fmt.Fprintf(w, "Fleet %s: %d hosts, %d allocations\n", when, len(st.Hosts), total)
	for _, h := range st.Hosts {
		fmt.Fprintln(w)
		switch {
		case at != "":
			fmt.Fprintf(w, "%s: %d allocated (as of event %s)\n", h.Host, len(h.Allocations), h.AsOf)
		case h.Reachable:
			fmt.Fprintf(w, "%s: %d allocated, heard %s ago, publishing lag %d events / %.1fs\n", h.Host, len(h.Allocations),
				time.Since(*h.LastHeard).Round(time.Second), h.LagEvents, h.LagSeconds)
		default:
			fmt.Fprintf(w, "%s: UNREACHABLE (no heartbeat); its last known allocations:\n", h.Host)
		}
		if len(h.Allocations) == 0 {
			continue
		}
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  PORT\tSERVICE\tPID\tHEALTH\tSINCE\tPURPOSE")
		for _, a := range h.Allocations {
			fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%s\t%s\n", a.Port, a.ServiceName, pidText(a.PID), a.HealthStatus,
				a.AllocatedAt.Local().Format("2006-01-02 15:04:05"), a.Purpose)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return nil
}

func pidText(pid int) string {
	if pid == 0 {
		return "-"
	}
	return strconv.Itoa(pid)
}

func printPlacements(w io.Writer, service string, ps []ledger.FleetPlacement) error {
	if len(ps) == 0 {
		_, err := fmt.Fprintf(w, "%s runs nowhere in the fleet now.\n", service)
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tPORT\tPID\tHEALTH\tSINCE\tHOST REACHABLE")
	for _, p := range ps {
		a := p.Allocation
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%v\n", p.Host, a.Port, pidText(a.PID), a.HealthStatus,
			a.AllocatedAt.Local().Format("2006-01-02 15:04:05"), p.Reachable)
	}
	return tw.Flush()
}

func printFleetEvents(w io.Writer, evs []ledger.FleetEvent) error {
	if len(evs) == 0 {
		_, err := fmt.Fprintln(w, "No events.")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "AT\tHOST\tPORT\tEVENT")
	for _, he := range evs {
		e := he.Event
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", localTime(e.At), he.Host, e.Port, e.Type)
	}
	return tw.Flush()
}
