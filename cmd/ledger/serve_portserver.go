package main

import (
	"errors"
	"flag"
	"fmt"
	"net"

	"github.com/portledger/portledger/httpapi"
	"github.com/portledger/portledger/internal/portserver"
	"github.com/portledger/portledger/ledger"
)

// portserverFlags are serve's flags for the portserver protocol listener.
type portserverFlags struct {
	addr    string
	service string
	rng     string
}

func (p *portserverFlags) register(e *env, fs *flag.FlagSet) {
	fs.StringVar(&p.addr, "portserver", e.getenv("LEDGER_PORTSERVER"),
		"also answer portpicker's portserver protocol on this unix socket: @NAME (Linux's abstract namespace, e.g. @unittest-portserver) or a path; set PORTSERVER_ADDRESS to it in the tests (env LEDGER_PORTSERVER)")
	fs.StringVar(&p.service, "portserver-service", portserver.DefaultService, "service name of the portserver's allocations")
	fs.StringVar(&p.rng, "portserver-range", "", "part LO-HI of the managed range that the portserver hands out (default: the whole range)")
}

// check validates the flags that need no ledger.
func (p *portserverFlags) check() error {
	if p.addr == "" {
		return nil
	}
	if p.rng != "" {
		if _, err := ledger.ParseRange(p.rng); err != nil {
			return usagef("--portserver-range: %s", ledger.ErrorMessage(err))
		}
	}
	return nil
}

// startPortserver opens the portserver listener of a started daemon, if
// one is asked for. Its allocations go through the daemon's own writer.
func (d *daemon) startPortserver(p portserverFlags) error {
	if p.addr == "" {
		return nil
	}
	managed := d.svc.Registry().Range
	var within ledger.Range
	if p.rng != "" {
		within, _ = ledger.ParseRange(p.rng) // checked by check
		if !managed.Contains(within.Lo) || !managed.Contains(within.Hi) {
			return usagef("--portserver-range %s is not inside the managed range %s", within, managed)
		}
	}
	srv, err := portserver.New(portserver.Config{Ledger: d.svc, Service: p.service, Within: within, Logger: d.logger, Peer: peerActor})
	if err != nil {
		return usagef("--portserver-service: %s", ledger.ErrorMessage(err))
	}
	ln, err := portserver.Listen(p.addr)
	if err != nil {
		return err
	}
	d.ps = srv
	if d.metrics != nil {
		d.metrics.WatchPortserver(func() []uint64 {
			st := srv.Stats()
			return []uint64{st.Answered, st.Malformed, st.Refused, st.Exhausted, st.Failed} // httpapi.PortserverOutcomes' order
		})
	}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, net.ErrClosed) {
			d.logger.Error("portserver stopped", "addr", p.addr, "err", err)
		}
	}()
	span := managed
	if within != (ledger.Range{}) {
		span = within
	}
	d.logger.Info("portserver", "address", p.addr, "service", p.service, "range", span.String(),
		"hint", fmt.Sprintf("PORTSERVER_ADDRESS=%s", p.addr))
	return nil
}

// stopPortserver stops answering portserver requests; those in progress
// finish first, while the writer still runs.
func (d *daemon) stopPortserver() {
	if d.ps != nil {
		if err := d.ps.Close(); err != nil {
			d.logger.Warn("portserver", "err", err)
		}
	}
}

// peerActor names the process on the other end of a portserver connection
// as the kernel knows it. Where the system does not say (Windows, which
// --portserver refuses anyway), the request is dropped.
func peerActor(c net.Conn) (ledger.Actor, error) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return ledger.Actor{}, errors.New("not a unix socket connection")
	}
	p, err := httpapi.PeerCred(uc)
	if err != nil {
		return ledger.Actor{}, err
	}
	return ledger.Actor{Via: ledger.ViaSocket, UID: p.UID, PID: p.PID}, nil
}
