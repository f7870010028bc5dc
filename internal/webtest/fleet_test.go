package webtest

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/matryer/is"
	"github.com/portledger/portledger/fleet/hub"
)

// TestDashboardShowsTheFleet runs a real NATS hub in the test process and
// two daemons in a fleet: the page of one shows both hosts and the other's
// allocation, and its /metrics exports the publishing lag.
func TestDashboardShowsTheFleet(t *testing.T) {
	is := is.New(t)
	h, err := hub.Start(context.Background(), hub.Options{Data: t.TempDir(), Listen: "127.0.0.1:0"})
	is.NoErr(err) // start the hub
	t.Cleanup(h.Shutdown)

	a := startDaemon(t, t.TempDir(), "--interval", "1h", "--fleet", h.ClientURL(), "--host", "alpha")
	b := startDaemon(t, t.TempDir(), "--interval", "1h", "--fleet", h.ClientURL(), "--host", "beta")
	port := b.allocate(t, "on-beta", "--purpose", "seen from alpha")

	tb := newTab(t, 60*time.Second)
	tb.open(t, dashboardURL(t, a))
	tb.waitJS(t, "the fleet shows beta's allocation",
		`!!document.querySelector('#fleet-rows tr[data-host="beta"][data-port="`+strconv.Itoa(port)+`"]')`, 15*time.Second)
	hosts := evalJS[[]string](t, tb, `[...document.querySelectorAll("#fleet-host-rows tr")].map(r => r.dataset.host)`)
	is.Equal(hosts, []string{"alpha", "beta"}) // both hosts
	self := evalJS[string](t, tb, `document.getElementById("fleet-self").textContent`)
	is.True(len(self) > 0) // this host's publishing status

	fams := scrape(t, a)
	_, ok := value(fams, "portledger_fleet_publish_lag_events")
	is.True(ok) // the lag is exported
	_, ok = value(fams, "portledger_fleet_publish_lag_seconds")
	is.True(ok)                                 // in seconds too
	is.Equal(tb.consoleErrors(), []string(nil)) // no console errors
}
