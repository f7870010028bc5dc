package fleet_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/matryer/is"
	"github.com/portledger/portledger/fleet"
	"github.com/portledger/portledger/fleet/hub"
	"github.com/portledger/portledger/httpapi"
	"github.com/portledger/portledger/ledger"
)

// The REST API of a daemon in a fleet answers /api/fleet from JetStream,
// refuses bad input with 400 and a JSON error, and shows the publishing lag
// in /api/ports/status.
func TestFleetOverREST(t *testing.T) {
	is := is.New(t)
	h := startHub(t, hub.Options{})
	a := startHost(t, "alpha", h.ClientURL(), fleet.PublisherConfig{})
	b := startHost(t, "beta", h.ClientURL(), fleet.PublisherConfig{})
	port := a.allocate(t, "learning")
	b.allocate(t, "api")
	a.waitCaughtUp(t, 5*time.Second)
	b.waitCaughtUp(t, 5*time.Second)
	time.Sleep(2 * time.Millisecond)
	at := ledger.UntilID(time.Now()) // a moment between the allocation and the release
	time.Sleep(2 * time.Millisecond)
	a.release(t, port, "done")
	a.waitCaughtUp(t, 5*time.Second)
	r, _ := reader(t, h.ClientURL())
	srv := httptest.NewServer(httpapi.NewServer(httpapi.Config{
		Service: a.svc, Fleet: r, Token: "fleet-test", Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		FleetStatus: func() *ledger.FleetStatus { st := a.pub.Status(); return &st },
	}))
	defer srv.Close()
	get := func(path string, v any) int {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		req.Header.Set("Authorization", "Bearer fleet-test") // reads over TCP need the token
		resp, err := http.DefaultClient.Do(req)
		is.NoErr(err) // GET
		defer resp.Body.Close()
		is.NoErr(json.NewDecoder(resp.Body).Decode(v)) // a JSON body
		return resp.StatusCode
	}
	for _, tc := range []struct {
		name, path string
		status     int
		check      func(body map[string]any)
	}{
		{"status now", "/api/fleet/status", 200, func(body map[string]any) {
			is.Equal(len(body["hosts"].([]any)), 2) // two hosts
		}},
		{"who at a moment", "/api/fleet/who/alpha/" + itoa(port) + "?at=" + at.String(), 200, func(body map[string]any) {
			holder := body["holder"].(map[string]any)
			is.Equal(holder["allocation"].(map[string]any)["service_name"], "learning") // held then
			is.Equal(holder["release"].(map[string]any)["reason"], "done")              // and how it ended
		}},
		{"find", "/api/fleet/find/api", 200, func(body map[string]any) {
			ps := body["placements"].([]any)
			is.Equal(len(ps), 1)                             // one placement
			is.Equal(ps[0].(map[string]any)["host"], "beta") // on beta
		}},
		{"history of a port", "/api/fleet/history?host=alpha&port=" + itoa(port), 200, func(body map[string]any) {
			evs := body["events"].([]any)
			is.Equal(len(evs), 2)                                 // allocated and released
			is.Equal(evs[0].(map[string]any)["host"], "alpha")    // each with its host
			is.Equal(evs[1].(map[string]any)["type"], "released") // in order
		}},
		{"usage", "/api/fleet/usage?since=1h", 200, func(body map[string]any) {
			is.Equal(len(body["usage"].([]any)), 2) // per host
		}},
		{"bad host", "/api/fleet/who/" + url.PathEscape("a*b") + "/8000", 400, func(body map[string]any) {
			is.Equal(body["code"], "invalid") // refused as bad input
		}},
		{"port without host", "/api/fleet/history?port=8000", 400, func(body map[string]any) {
			is.Equal(body["code"], "invalid") // refused as bad input
		}},
		{"unknown host", "/api/fleet/who/nobody/8000", 404, func(body map[string]any) {
			is.Equal(body["code"], "not_found") // no such host on the stream
		}},
		{"lag in the status", "/api/ports/status", 200, func(body map[string]any) {
			f := body["fleet"].(map[string]any)
			is.Equal(f["host"], "alpha")   // this host
			is.Equal(f["connected"], true) // publishing
			is.Equal(f["lag_events"], 0.0) // caught up
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var body map[string]any
			is.Equal(get(tc.path, &body), tc.status) // status code
			tc.check(body)
		})
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
