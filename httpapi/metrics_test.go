package httpapi

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/matryer/is"
	"github.com/portledger/portledger/commands"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
)

// Metrics is the daemon ledger's commands.Observer; the assertion lives in
// a test so that httpapi itself does not import commands.
var _ commands.Observer = (*Metrics)(nil)

// metricLine returns the text line of /metrics that starts with prefix, or "".
func metricLine(t *testing.T, e *testEnv, prefix string) string {
	t.Helper()
	_, body := e.raw(t, http.MethodGet, "/metrics", "", "")
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, prefix) {
			return line
		}
	}
	return ""
}

// TestMetricsLabelRoutesByPatternNotPath: a request for a port is counted
// under the route's pattern, so ports never become label values; a method
// the server does not know is counted as "other".
func TestMetricsLabelRoutesByPatternNotPath(t *testing.T) {
	is := is.New(t)
	e := newEnv(t, func(c *Config) { c.Metrics = NewMetrics(MetricsConfig{Version: "test"}) })
	a := e.allocate(t, "api")
	tests := []struct {
		name   string
		method string
		path   string
		want   string
	}{
		{"a port's allocation", http.MethodGet, "/api/ports/allocations/" + strconv.Itoa(a.Port),
			`portledger_http_requests_total{code="2xx",method="GET",route="/api/ports/allocations/{port}"} 1`},
		{"a free port", http.MethodGet, "/api/ports/allocations/27099",
			`portledger_http_requests_total{code="4xx",method="GET",route="/api/ports/allocations/{port}"} 1`},
		{"an odd method", "BREW", "/api/ports/status",
			`portledger_http_requests_total{code="4xx",method="other",route="unmatched"} 1`},
		{"an unknown path", http.MethodGet, "/no/such/31123",
			`portledger_http_requests_total{code="4xx",method="GET",route="unmatched"} 1`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			e.raw(t, tt.method, tt.path, "", "")
			prefix, _, _ := strings.Cut(tt.want, "} ")
			is.Equal(metricLine(t, e, prefix+"}"), tt.want) // counted by pattern
		})
	}
	_, body := e.raw(t, http.MethodGet, "/metrics", "", "")
	is.True(!strings.Contains(string(body), strconv.Itoa(a.Port))) // no port number anywhere
}

// TestMetricsCountOpenEventStreams opens an event stream and sees
// portledger_sse_subscribers go to 1, then back to 0 when it closes.
func TestMetricsCountOpenEventStreams(t *testing.T) {
	is := is.New(t)
	e := newEnv(t, func(c *Config) { c.Metrics = NewMetrics(MetricsConfig{Version: "test"}) })
	is.Equal(metricLine(t, e, "portledger_sse_subscribers "), "portledger_sse_subscribers 0") // none yet
	req, err := http.NewRequest("GET", e.srv.URL+"/api/ports/events", nil)
	is.NoErr(err)
	resp, err := e.srv.Client().Do(e.authorize(req))
	is.NoErr(err)                                                                             // open the stream
	is.Equal(metricLine(t, e, "portledger_sse_subscribers "), "portledger_sse_subscribers 1") // one open
	resp.Body.Close()
	deadline := time.Now().Add(5 * time.Second)
	for metricLine(t, e, "portledger_sse_subscribers ") != "portledger_sse_subscribers 0" {
		if time.Now().After(deadline) {
			t.Fatal("the closed stream is still counted")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestMetricsPortserverOutcomes: the portserver listener's counts appear
// by outcome, read at each scrape.
func TestMetricsPortserverOutcomes(t *testing.T) {
	is := is.New(t)
	m := NewMetrics(MetricsConfig{Version: "test"})
	e := newEnv(t, func(c *Config) { c.Metrics = m })
	counts := []uint64{20, 3, 2, 1, 0}
	m.WatchPortserver(func() []uint64 { return counts })
	m.WatchPortserver(func() []uint64 { return nil }) // a second call changes nothing
	for i, outcome := range PortserverOutcomes {
		want := `portledger_portserver_requests_total{outcome="` + outcome + `"} ` + strconv.FormatUint(counts[i], 10)
		is.Equal(metricLine(t, e, `portledger_portserver_requests_total{outcome="`+outcome+`"}`), want) // each outcome
	}
	counts[0] = 21
	is.Equal(metricLine(t, e, `portledger_portserver_requests_total{outcome="answered"}`),
		`portledger_portserver_requests_total{outcome="answered"} 21`) // read again at the next scrape
}

// statusWriter records the final status, not an informational one, and
// lets http.ResponseController flush through it.
func TestStatusWriter(t *testing.T) {
	is := is.New(t)
	rec := httptest.NewRecorder()
	w := &statusWriter{ResponseWriter: rec}
	w.WriteHeader(http.StatusEarlyHints)
	is.Equal(w.status, 0) // 103 is not the answer
	w.WriteHeader(http.StatusCreated)
	is.Equal(w.status, http.StatusCreated)
	is.NoErr(http.NewResponseController(w).Flush()) // reaches the recorder's Flush
	is.True(rec.Flushed)

	w = &statusWriter{ResponseWriter: httptest.NewRecorder()}
	_, err := w.Write([]byte("{}"))
	is.NoErr(err)
	is.Equal(w.status, http.StatusOK) // a body without a header is a 200
}

// fixedLag is a FleetLagger with a set lag.
type fixedLag struct{}

func (fixedLag) FleetLag() (uint64, time.Duration) { return 3, 2 * time.Second }

// TestMetricsFollowPrometheusNaming lints every metric the daemon can
// export (the optional ones too: log size, fleet lag, portserver outcomes),
// after a few requests, with the Prometheus client's own linter (promtool's
// rules: counters end in _total, base units, snake case, help text...), and
// checks the prefix and the _info metric the daemon adds to them.
func TestMetricsFollowPrometheusNaming(t *testing.T) {
	is := is.New(t)
	m := NewMetrics(MetricsConfig{Version: "test", LogSize: func() (int64, error) { return 4096, nil }, Fleet: fixedLag{}})
	m.WatchPortserver(func() []uint64 { return []uint64{1, 2, 3, 4, 5} })
	e := newEnv(t, func(c *Config) { c.Metrics = m })
	e.allocate(t, "lint")
	m.Sweep(time.Millisecond)
	_, _ = e.raw(t, http.MethodGet, "/metrics", "", "")

	fams, err := m.reg.Gather()
	is.NoErr(err) // gathered
	problems, err := promlint.NewWithMetricFamilies(fams).Lint()
	is.NoErr(err) // linted
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
	names := map[string]bool{}
	for _, f := range fams {
		n := f.GetName()
		names[n] = true
		// go_ and process_ are the client's standard collectors,
		// promhttp_ its handler's own error count.
		if !strings.HasPrefix(n, "portledger_") && !strings.HasPrefix(n, "go_") && !strings.HasPrefix(n, "process_") && !strings.HasPrefix(n, "promhttp_") {
			t.Errorf("%s: want the portledger_ prefix", n)
		}
	}
	for _, n := range []string{"portledger_build_info", "portledger_log_size_bytes", "portledger_fleet_publish_lag_seconds",
		"portledger_portserver_requests_total", "portledger_http_requests_total", "portledger_watchdog_sweeps_total"} {
		is.True(names[n]) // exported
	}
}
