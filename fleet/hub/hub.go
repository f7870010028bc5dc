// Package hub runs the fleet's NATS server in-process, with JetStream and
// its store under a data directory: `ledger hub` (the ledger-hub binary),
// the embedded default for a team that has no NATS. It lives apart from
// package fleet so that the ledger CLI, which links fleet's client, does not
// link the server (about 10 ms more of start-up for every CLI call).
package hub

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/portledger/portledger/fleet"
)

// DefaultListen is where a hub takes client connections.
const DefaultListen = "127.0.0.1:4222"

// Options configure a hub.
type Options struct {
	// Data is the hub's directory; JetStream's store is Data/jetstream.
	// Required.
	Data string
	// Listen is the client address (default DefaultListen; port 0 picks
	// one).
	Listen string
	// Name names this server (default derived from Listen); the servers
	// of a cluster need distinct names.
	Name string
	// Cluster is the address where this hub takes routes from the other
	// hubs of a cluster ("" for a lone hub); Routes are the others'
	// cluster addresses (nats://host:6222). ClusterName names the cluster
	// (default "portledger").
	Cluster     string
	Routes      []string
	ClusterName string
	// User and Password, or Token, are required of clients when set.
	User, Password, Token string
	// TLSCert and TLSKey make the client port speak TLS; TLSCA, when set,
	// also asks clients for a certificate signed by it.
	TLSCert, TLSKey, TLSCA string
	// ConfigFile is a NATS server configuration file read first (accounts,
	// per-user permissions, anything else); the options above override it.
	ConfigFile string
	// Limits of the stream and buckets the hub creates. In a cluster the
	// default Replicas is 3.
	Limits fleet.Limits
	// Log writes the server's log to stderr.
	Log bool
	// Ready bounds the wait for the server and, in a cluster, for the
	// stream to be created (default 30 s).
	Ready time.Duration
}

// Hub is a running NATS server with the fleet's stream and buckets.
type Hub struct {
	srv  *server.Server
	opts Options
}

// Start starts the server, waits until it takes connections and creates
// the stream and the buckets where they do not exist. In a cluster it waits
// until the other hubs answer (the stream needs a quorum of replicas).
func Start(ctx context.Context, o Options) (*Hub, error) {
	if o.Data == "" {
		return nil, errors.New("hub: no data directory: give --data DIR")
	}
	if o.Listen == "" {
		o.Listen = DefaultListen
	}
	if o.Ready <= 0 {
		o.Ready = 30 * time.Second
	}
	sopts := &server.Options{}
	if o.ConfigFile != "" {
		var err error
		if sopts, err = server.ProcessConfigFile(o.ConfigFile); err != nil {
			return nil, fmt.Errorf("hub: %w", err)
		}
	}
	host, port, err := splitHostPort(o.Listen, 4222)
	if err != nil {
		return nil, fmt.Errorf("hub: --listen %s: %w", o.Listen, err)
	}
	sopts.Host, sopts.Port = host, anyPort(port)
	sopts.JetStream = true
	sopts.StoreDir = filepath.Join(o.Data, "jetstream")
	sopts.NoSigs = true // the caller handles signals and calls Shutdown
	sopts.NoLog = !o.Log
	sopts.ServerName = o.Name
	if sopts.ServerName == "" {
		sopts.ServerName = "portledger-hub-" + strconv.Itoa(port)
	}
	if o.User != "" || o.Password != "" {
		sopts.Username, sopts.Password = o.User, o.Password
	}
	if o.Token != "" {
		sopts.Authorization = o.Token
	}
	if o.TLSCert != "" {
		tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: o.TLSCert, KeyFile: o.TLSKey, CaFile: o.TLSCA, Verify: o.TLSCA != ""})
		if err != nil {
			return nil, fmt.Errorf("hub: TLS: %w", err)
		}
		sopts.TLSConfig, sopts.TLS, sopts.TLSVerify = tc, true, o.TLSCA != ""
	}
	clustered := o.Cluster != ""
	if clustered {
		chost, cport, err := splitHostPort(o.Cluster, 6222)
		if err != nil {
			return nil, fmt.Errorf("hub: --cluster %s: %w", o.Cluster, err)
		}
		sopts.Cluster.Host, sopts.Cluster.Port = chost, anyPort(cport)
		sopts.Cluster.Name = o.ClusterName
		if sopts.Cluster.Name == "" {
			sopts.Cluster.Name = "portledger"
		}
		for _, r := range o.Routes {
			sopts.Routes = append(sopts.Routes, server.RoutesFromStr(r)...)
		}
		if o.Limits.Replicas == 0 {
			o.Limits.Replicas = 3
		}
	}
	srv, err := server.NewServer(sopts)
	if err != nil {
		return nil, fmt.Errorf("hub: %w", err)
	}
	if o.Log {
		srv.ConfigureLogger()
	}
	srv.Start()
	if !srv.ReadyForConnections(o.Ready) {
		srv.Shutdown()
		return nil, fmt.Errorf("hub: the NATS server did not start listening on %s within %s", o.Listen, o.Ready)
	}
	h := &Hub{srv: srv, opts: o}
	if err := h.ensure(ctx); err != nil {
		h.Shutdown()
		return nil, err
	}
	return h, nil
}

// ensure creates the stream and buckets, retrying while a cluster forms.
func (h *Hub) ensure(ctx context.Context) error {
	copts := []nats.Option{nats.InProcessServer(h.srv), nats.Name("portledger hub")}
	if h.opts.User != "" {
		copts = append(copts, nats.UserInfo(h.opts.User, h.opts.Password))
	}
	if h.opts.Token != "" {
		copts = append(copts, nats.Token(h.opts.Token))
	}
	nc, err := nats.Connect("", copts...)
	if err != nil {
		// A configuration file with its own users: leave the stream to
		// the first daemon, which creates it with the same defaults.
		return nil
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, h.opts.Ready)
	defer cancel()
	for {
		octx, ocancel := context.WithTimeout(ctx, 5*time.Second)
		err = fleet.Ensure(octx, js, h.opts.Limits)
		ocancel()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("hub: create the stream: %w (a cluster needs a majority of its hubs running)", err)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// ClientURL is the URL daemons connect to.
func (h *Hub) ClientURL() string { return h.srv.ClientURL() }

// ClusterAddr is the address of this hub's cluster port ("" when not in a
// cluster).
func (h *Hub) ClusterAddr() string {
	if a := h.srv.ClusterAddr(); a != nil {
		return a.String()
	}
	return ""
}

// Server is the NATS server, for tests and measurements.
func (h *Hub) Server() *server.Server { return h.srv }

// Shutdown stops the server: clients are disconnected, the store is
// flushed and closed.
func (h *Hub) Shutdown() {
	h.srv.Shutdown()
	h.srv.WaitForShutdown()
}

func splitHostPort(addr string, defPort int) (string, int, error) {
	host, ps, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	if ps == "" {
		return host, defPort, nil
	}
	port, err := strconv.Atoi(ps)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("bad port %q", ps)
	}
	return host, port, nil
}

// anyPort maps port 0 (pick one) to the server's own word for it; its 0
// means the default port.
func anyPort(port int) int {
	if port == 0 {
		return server.RANDOM_PORT
	}
	return port
}
