package main

import (
	"context"
	"flag"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/oklog/ulid/v2"
	"github.com/portledger/portledger/fleet"
	"github.com/portledger/portledger/ledger"
)

// fleetFlags are the NATS connection flags of `serve` and `fleet`.
type fleetFlags struct {
	conn fleet.ConnOptions
	host string
}

// addFleetConnFlags registers the connection flags, with their environment
// defaults.
func addFleetConnFlags(e *env, fs *flag.FlagSet, f *fleetFlags) {
	fs.StringVar(&f.conn.URL, "fleet", e.getenv("LEDGER_FLEET"), "the fleet's NATS URL(s), e.g. nats://hub:4222 (env LEDGER_FLEET)")
	fs.StringVar(&f.conn.Creds, "fleet-creds", e.getenv("LEDGER_FLEET_CREDS"), "NATS credentials file (env LEDGER_FLEET_CREDS)")
	fs.StringVar(&f.conn.User, "fleet-user", e.getenv("LEDGER_FLEET_USER"), "NATS user (env LEDGER_FLEET_USER)")
	fs.StringVar(&f.conn.Password, "fleet-password", e.getenv("LEDGER_FLEET_PASSWORD"), "NATS password (env LEDGER_FLEET_PASSWORD)")
	fs.StringVar(&f.conn.Token, "fleet-token", e.getenv("LEDGER_FLEET_TOKEN"), "NATS token (env LEDGER_FLEET_TOKEN)")
	fs.StringVar(&f.conn.NKey, "fleet-nkey", e.getenv("LEDGER_FLEET_NKEY"), "file with a NATS nkey seed (env LEDGER_FLEET_NKEY)")
	fs.StringVar(&f.conn.TLSCA, "fleet-tls-ca", e.getenv("LEDGER_FLEET_TLS_CA"), "CA that signed the NATS server's certificate (PEM)")
	fs.StringVar(&f.conn.TLSCert, "fleet-tls-cert", e.getenv("LEDGER_FLEET_TLS_CERT"), "client certificate for NATS (PEM)")
	fs.StringVar(&f.conn.TLSKey, "fleet-tls-key", e.getenv("LEDGER_FLEET_TLS_KEY"), "the client certificate's key (PEM)")
}

// checkServeFleet validates the fleet flags of `serve` before anything
// starts: a bad host name is refused at start.
func checkServeFleet(f *fleetFlags) error {
	if f.conn.URL == "" {
		if f.host != "" {
			return usagef("--host names this host in a fleet: give --fleet too")
		}
		return nil
	}
	if f.host == "" {
		h, err := fleet.DefaultHost()
		if err != nil {
			return usagef("%v", err)
		}
		f.host = h
	}
	if err := fleet.ValidateHost(f.host); err != nil {
		return usagef("--host: %s", ledger.ErrorMessage(err))
	}
	return nil
}

// fleetPart is the fleet side of a running daemon: the publisher and the
// reader behind /api/fleet.
type fleetPart struct {
	pub    *fleet.Publisher
	reader *fleet.Reader
	nc     *nats.Conn // the reader's connection
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// startFleet starts publishing this host's log to the fleet. A NATS that is
// down or refuses the credentials is logged and shown in the status; the
// daemon serves on either way.
func (d *daemon) startFleet(f *fleetFlags) error {
	if f.conn.URL == "" {
		return nil
	}
	pub, err := fleet.NewPublisher(fleet.PublisherConfig{Log: d.log, Host: f.host, Conn: f.conn, Logger: d.logger,
		ChainHead: func(id ulid.ULID) (string, bool) { return fleet.ChainHeader(d.log.ChainHead(), id) }})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	fp := &fleetPart{pub: pub, cancel: cancel}
	if d.metrics != nil {
		d.metrics.WatchFleet(fleetLag{d})
	}
	fp.wg.Add(1)
	go func() {
		defer fp.wg.Done()
		if err := pub.Run(ctx); err != nil {
			d.logger.Error("fleet publisher stopped", "err", err)
		}
	}()
	d.fleetMu.Lock()
	d.fleet = fp
	d.fleetMu.Unlock()
	// The reader has a connection of its own, made in the background so
	// that a hub that is down does not hold up the start.
	rconn := f.conn
	rconn.Name = "portledger reader " + f.host
	fp.wg.Add(1)
	go func() {
		defer fp.wg.Done()
		for wait := 250 * time.Millisecond; ; wait = min(2*wait, 30*time.Second) {
			nc, err := fleet.Connect(rconn)
			if err == nil {
				reader, err := fleet.NewReader(nc, nil)
				if err != nil {
					nc.Close()
					return
				}
				d.fleetMu.Lock()
				fp.reader, fp.nc = reader, nc
				d.fleetMu.Unlock()
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
		}
	}()
	d.logger.Info("publishing to the fleet", "fleet", f.conn.URL, "host", f.host)
	return nil
}

// stopFleet stops the publisher, which stores its cursor.
func (d *daemon) stopFleet() {
	d.fleetMu.Lock()
	fp := d.fleet
	d.fleetMu.Unlock()
	if fp == nil {
		return
	}
	fp.cancel()
	fp.wg.Wait()
	d.fleetMu.Lock()
	defer d.fleetMu.Unlock()
	if fp.nc != nil {
		fp.nc.Close()
	}
	fp.reader = nil
}

// fleetStatus is the status's fleet part (nil without --fleet).
func (d *daemon) fleetStatus() *ledger.FleetStatus {
	d.fleetMu.Lock()
	fp := d.fleet
	d.fleetMu.Unlock()
	if fp == nil {
		return nil
	}
	st := fp.pub.Status()
	return &st
}

// fleetLag reads the publisher's lag for the metrics.
type fleetLag struct{ d *daemon }

// FleetLag returns the events not yet acknowledged by the fleet and the age
// of the oldest (httpapi.FleetLagger).
func (f fleetLag) FleetLag() (uint64, time.Duration) {
	st := f.d.fleetStatus()
	if st == nil {
		return 0, 0
	}
	return st.LagEvents, time.Duration(st.LagSeconds * float64(time.Second))
}

// fleetReader answers /api/fleet through the reader once it is there.
type fleetReader struct{ d *daemon }

func (r fleetReader) get() (*fleet.Reader, error) {
	r.d.fleetMu.Lock()
	defer r.d.fleetMu.Unlock()
	if r.d.fleet == nil || r.d.fleet.reader == nil {
		return nil, ledger.Errorf(ledger.ENOTFOUND, "this daemon reads no fleet: start it with --fleet nats://HUB:4222 (or its NATS refused it; see its log)")
	}
	return r.d.fleet.reader, nil
}

func (r fleetReader) Status(ctx context.Context, at ulid.ULID) (ledger.FleetView, error) {
	fr, err := r.get()
	if err != nil {
		return ledger.FleetView{}, err
	}
	return fr.Status(ctx, at)
}

func (r fleetReader) Hosts(ctx context.Context) ([]ledger.FleetHostRange, error) {
	fr, err := r.get()
	if err != nil {
		return nil, err
	}
	return fr.Hosts(ctx)
}

func (r fleetReader) Who(ctx context.Context, host string, port int, at ulid.ULID) (ledger.WhoAnswer, error) {
	fr, err := r.get()
	if err != nil {
		return ledger.WhoAnswer{}, err
	}
	return fr.Who(ctx, host, port, at)
}

func (r fleetReader) Find(ctx context.Context, service string) ([]ledger.FleetPlacement, error) {
	fr, err := r.get()
	if err != nil {
		return nil, err
	}
	return fr.Find(ctx, service)
}

func (r fleetReader) History(ctx context.Context, q ledger.FleetHistoryQuery) ([]ledger.FleetEvent, error) {
	fr, err := r.get()
	if err != nil {
		return nil, err
	}
	return fr.History(ctx, q)
}

func (r fleetReader) Usage(ctx context.Context, q ledger.UsageQuery) ([]ledger.FleetUsage, error) {
	fr, err := r.get()
	if err != nil {
		return nil, err
	}
	return fr.Usage(ctx, q)
}
