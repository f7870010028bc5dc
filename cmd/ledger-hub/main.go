// Command ledger-hub runs the fleet's NATS server with JetStream: what
// `ledger hub` starts. It is a binary of its own so that the ledger CLI does
// not link the NATS server. Install it next to ledger with
// `go install ./cmd/ledger-hub`.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"github.com/portledger/portledger/internal/flagdoc"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/portledger/portledger/fleet"
	"github.com/portledger/portledger/fleet/hub"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	case errors.As(err, new(usageError)):
		fmt.Fprintf(os.Stderr, "ledger hub: %v\n", err)
		os.Exit(2)
	default:
		fmt.Fprintf(os.Stderr, "ledger hub: %v\n", err)
		os.Exit(1)
	}
}

type usageError struct{ error }

const help = `Usage: ledger hub --data DIR [--listen 127.0.0.1:4222] [--cluster HOST:6222 --routes nats://OTHER:6222,...]

Run the fleet's NATS server with JetStream, its store under --data, and
create the fleet's stream (PORTLEDGER) and buckets (PORTLEDGER_LIVE,
PORTLEDGER_HOSTS) where they do not exist yet. Daemons publish to it with
'ledger serve --fleet nats://HOST:PORT --host NAME'. SIGINT or SIGTERM stop
it cleanly.

Three hubs form a JetStream cluster that survives losing one: give each a
distinct --name, its own --cluster address and the others' addresses in
--routes. The stream then keeps 3 replicas.

A team that already runs NATS does not need a hub: point --fleet at it.

Flags:
`

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("ledger hub", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, help)
		flagdoc.Print(fs.Output(), fs)
	}
	var o hub.Options
	var routes string
	fs.StringVar(&o.Data, "data", getenv("LEDGER_HUB_DATA"), "the hub's data directory (JetStream's store is DIR/jetstream) (LEDGER_HUB_DATA)")
	fs.StringVar(&o.Listen, "listen", hub.DefaultListen, "address for NATS clients (the daemons)")
	fs.StringVar(&o.Name, "name", "", "server name; each hub of a cluster needs its own")
	fs.StringVar(&o.Cluster, "cluster", "", "address for routes from the other hubs of a cluster, e.g. 0.0.0.0:6222")
	fs.StringVar(&routes, "routes", "", "comma-separated cluster addresses of the other hubs, e.g. nats://hub2:6222,nats://hub3:6222")
	fs.StringVar(&o.ClusterName, "cluster-name", "portledger", "the cluster's name")
	fs.StringVar(&o.User, "user", "", "user name that clients must give")
	fs.StringVar(&o.Password, "pass", getenv("LEDGER_HUB_PASS"), "password that clients must give (LEDGER_HUB_PASS)")
	fs.StringVar(&o.Token, "token", getenv("LEDGER_HUB_TOKEN"), "token that clients must give (LEDGER_HUB_TOKEN)")
	fs.StringVar(&o.TLSCert, "tls-cert", "", "server certificate (PEM): clients must use TLS")
	fs.StringVar(&o.TLSKey, "tls-key", "", "the server certificate's key (PEM)")
	fs.StringVar(&o.TLSCA, "tls-ca", "", "CA (PEM) that signs the clients' certificates: clients must present one")
	fs.StringVar(&o.ConfigFile, "config", "", "a NATS server configuration file (accounts, per-user permissions), read before the flags")
	fs.IntVar(&o.Limits.Replicas, "replicas", 0, "copies of the stream (default 1 alone, 3 in a cluster)")
	fs.DurationVar(&o.Limits.MaxAge, "max-age", fleet.DefaultMaxAge, "how long events are kept")
	fs.Int64Var(&o.Limits.MaxBytes, "max-bytes", 0, "the stream's size bound in bytes, the oldest events going first (default: the server's JetStream store limit)")
	fs.DurationVar(&o.Limits.Duplicates, "dedup-window", fleet.DefaultDuplicates, "how long a re-sent event is recognised")
	fs.DurationVar(&o.Limits.HeartbeatTTL, "heartbeat-ttl", fleet.DefaultHeartbeatTTL, "a host not heard from for this long is shown unreachable")
	fs.BoolVar(&o.Log, "log", false, "write the NATS server's log to stderr")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("hub takes no arguments, got %q", fs.Args())}
	}
	if o.Data == "" {
		return usageError{errors.New("--data DIR is required")}
	}
	if routes != "" {
		if o.Cluster == "" {
			return usageError{errors.New("--routes needs --cluster (this hub's own cluster address)")}
		}
		o.Routes = strings.Split(routes, ",")
	}
	if o.Limits.Replicas < 0 || o.Limits.Replicas > 5 {
		return usageError{errors.New("--replicas must be 1 to 5")}
	}
	if err := os.MkdirAll(o.Data, 0o700); err != nil {
		return err
	}
	start := time.Now()
	h, err := hub.Start(ctx, o)
	if err != nil {
		return err
	}
	url := h.ClientURL()
	fmt.Fprintf(stdout, "ledger hub: NATS with JetStream on %s (store %s/jetstream, ready in %s)\n", url, o.Data, time.Since(start).Round(time.Millisecond))
	if a := h.ClusterAddr(); a != "" {
		fmt.Fprintf(stdout, "ledger hub: cluster %s on %s, routes %s\n", o.ClusterName, a, routes)
	}
	fmt.Fprintf(stdout, "Point each host's daemon at it:\n    LEDGER_FLEET=%s ledger serve --host NAME\nand read the fleet with 'ledger fleet status --fleet %s'.\n", url, url)
	<-ctx.Done()
	fmt.Fprintln(stdout, "ledger hub: stopping")
	h.Shutdown()
	return nil
}
