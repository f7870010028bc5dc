package httpapi

import (
	"context"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/oklog/ulid/v2"
	"github.com/portledger/portledger/ledger"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metricsNamespace prefixes every metric of the daemon.
const metricsNamespace = "portledger"

// FleetLagger reports how far this host's fleet publisher is behind its
// log. The fleet publisher implements it where the daemon runs with --fleet.
type FleetLagger interface {
	// FleetLag returns the events committed but not yet acknowledged by
	// the fleet, and the age of the oldest of them (0 when none waits).
	FleetLag() (events uint64, age time.Duration)
}

// MetricsConfig is what NewMetrics needs besides the server's Config.
type MetricsConfig struct {
	// Version is the daemon's version, the label of portledger_build_info.
	Version string
	// LogSize returns the size of the ledger file in bytes (nil: the
	// metric is not exported).
	LogSize func() (int64, error)
	// Fleet, when set, exports the fleet publisher's lag.
	Fleet FleetLagger
}

// Metrics holds the daemon's Prometheus metrics in their own registry (not
// the global default one). It is the commands.Observer of the daemon's
// ledger, its watchdog's OnSweep hook and, once given to NewServer in
// Config.Metrics, the instrument of every HTTP request and the /metrics
// endpoint. No metric has a label whose values grow without bound: no port,
// PID or service name.
type Metrics struct {
	reg *prometheus.Registry

	// state is read at each scrape: set by NewServer from its Config.
	state atomic.Pointer[stateSource]

	fleetOnce sync.Once // WatchFleet registers the fleet's gauges once
	// portserverOnce: WatchPortserver registers its counters once.
	portserverOnce sync.Once

	allocations   prometheus.Counter
	releases      *prometheus.CounterVec
	refused       *prometheus.CounterVec
	transitions   *prometheus.CounterVec
	foreignSeen   prometheus.Counter
	events        *prometheus.CounterVec
	commitSeconds prometheus.Histogram
	groupSize     prometheus.Histogram
	sweeps        prometheus.Counter
	sweepSeconds  prometheus.Histogram
	httpRequests  *prometheus.CounterVec
	httpSeconds   *prometheus.HistogramVec
	subscribers   prometheus.Gauge

	// Children resolved once, so that a commit does no label lookups.
	eventsByType  map[ledger.EventType]prometheus.Counter
	releaseByCls  map[string]prometheus.Counter
	healthByState map[ledger.Health]prometheus.Counter
}

// stateSource is what the scrape-time gauges read.
type stateSource struct {
	svc ledger.Service
	wd  Watchdog
}

// Release reason classes, the values of portledger_releases_total's label.
const (
	releaseManual      = "manual"       // a person or script asked
	releaseProcessExit = "process_exit" // `ledger run` saw its child exit
	releaseDead        = "dead"         // the watchdog found the process gone
	releaseLease       = "lease_expired"
	releaseImport      = "import" // imported from the original port manager's files
)

// releaseClass sorts a release into one of a few classes by who released
// it and why.
func releaseClass(p *ledger.Released) string {
	switch {
	case p == nil:
		return releaseManual
	case p.ReleasedBy == "watchdog" && strings.HasPrefix(p.Reason, "lease of"):
		return releaseLease
	case p.ReleasedBy == "watchdog":
		return releaseDead
	case p.ReleasedBy == "ledger run":
		return releaseProcessExit
	case p.ReleasedBy == "import":
		return releaseImport
	}
	return releaseManual
}

// NewMetrics makes the daemon's metrics and registers them, with the Go
// runtime's and the process's, in a registry of their own.
func NewMetrics(cfg MetricsConfig) *Metrics {
	reg := prometheus.NewRegistry()
	f := func(c prometheus.Collector) prometheus.Collector { reg.MustRegister(c); return c }
	m := &Metrics{reg: reg}
	ns := metricsNamespace
	if cfg.Version == "" {
		cfg.Version = "dev"
	}

	f(collectors.NewGoCollector())
	f(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	build := prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "build_info",
		Help:        "The daemon's version and Go version; always 1.",
		ConstLabels: prometheus.Labels{"version": cfg.Version, "goversion": runtime.Version()}})
	build.Set(1)
	f(build)

	m.allocations = f(prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "allocations_total",
		Help: "Ports handed out since the daemon started."})).(prometheus.Counter)
	m.releases = f(prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "releases_total",
		Help: "Ports released since the daemon started, by reason class (manual, process_exit, dead, lease_expired, import)."},
		[]string{"reason_class"})).(*prometheus.CounterVec)
	m.refused = f(prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "allocations_refused_total",
		Help: "Allocations refused, by error code (invalid, conflict, exhausted, internal...)."},
		[]string{"code"})).(*prometheus.CounterVec)
	m.transitions = f(prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "health_transitions_total",
		Help: "Health changes recorded, by the state entered."}, []string{"state"})).(*prometheus.CounterVec)
	m.foreignSeen = f(prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "foreign_listeners_detected_total",
		Help: "Foreign listeners found in the managed range and recorded."})).(prometheus.Counter)
	m.events = f(prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "events_appended_total",
		Help: "Events appended to the log, by event type."}, []string{"type"})).(*prometheus.CounterVec)
	m.commitSeconds = f(prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Name: "commit_duration_seconds",
		Help:    "Time of one group commit: deciding its commands and the bbolt transaction with its fsyncs.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 14)})).(prometheus.Histogram)
	m.groupSize = f(prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Name: "commit_group_size",
		Help:    "Commands decided together in one group commit.",
		Buckets: prometheus.ExponentialBuckets(1, 2, 9)})).(prometheus.Histogram)
	m.sweeps = f(prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "watchdog_sweeps_total",
		Help: "Watchdog sweeps completed."})).(prometheus.Counter)
	m.sweepSeconds = f(prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Name: "watchdog_sweep_duration_seconds",
		Help:    "Time of one watchdog sweep over every allocation.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)})).(prometheus.Histogram)
	m.httpRequests = f(prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "http_requests_total",
		Help: "HTTP requests answered, by route pattern, method and status class."},
		[]string{"route", "method", "code"})).(*prometheus.CounterVec)
	m.httpSeconds = f(prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: "http_request_duration_seconds",
		Help:    "Time to answer an HTTP request, by route pattern (an event stream counts its whole life).",
		Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10)}, []string{"route"})).(*prometheus.HistogramVec)
	m.subscribers = f(prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "sse_subscribers",
		Help: "Open event streams (GET /api/ports/events)."})).(prometheus.Gauge)

	f(&stateCollector{m: m})
	if cfg.LogSize != nil {
		size := cfg.LogSize
		f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Name: "log_size_bytes",
			Help: "Size of the ledger file."}, func() float64 {
			n, err := size()
			if err != nil {
				return -1
			}
			return float64(n)
		}))
	}
	if cfg.Fleet != nil {
		m.WatchFleet(cfg.Fleet)
	}

	// Every label value known in advance is created now, so a scrape
	// shows it at 0 before it first happens.
	m.eventsByType = make(map[ledger.EventType]prometheus.Counter)
	for _, t := range []ledger.EventType{ledger.EventAllocated, ledger.EventPIDRegistered, ledger.EventHealthChanged,
		ledger.EventStatsReported, ledger.EventReleased, ledger.EventConflictDetected, ledger.EventRangeChanged} {
		m.eventsByType[t] = m.events.WithLabelValues(string(t))
	}
	m.releaseByCls = make(map[string]prometheus.Counter)
	for _, c := range []string{releaseManual, releaseProcessExit, releaseDead, releaseLease, releaseImport} {
		m.releaseByCls[c] = m.releases.WithLabelValues(c)
	}
	m.healthByState = make(map[ledger.Health]prometheus.Counter)
	for _, h := range []ledger.Health{ledger.HealthStarting, ledger.HealthHealthy, ledger.HealthUnhealthy, ledger.HealthDead} {
		m.healthByState[h] = m.transitions.WithLabelValues(string(h))
	}
	for _, c := range []string{ledger.EINVALID, ledger.ECONFLICT, ledger.EEXHAUSTED, ledger.ENOTFOUND, ledger.EINTERNAL} {
		m.refused.WithLabelValues(c)
	}
	return m
}

// WatchFleet exports the fleet publisher's lag, read from fl at each
// scrape: for a daemon that joins a fleet after its metrics were made. Only
// the first call counts.
func (m *Metrics) WatchFleet(fl FleetLagger) {
	m.fleetOnce.Do(func() {
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: metricsNamespace, Name: "fleet_publish_lag_events",
			Help: "Events committed here and not yet acknowledged by the fleet."}, func() float64 {
			n, _ := fl.FleetLag()
			return float64(n)
		}))
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: metricsNamespace, Name: "fleet_publish_lag_seconds",
			Help: "Age of the oldest event not yet acknowledged by the fleet."}, func() float64 {
			_, age := fl.FleetLag()
			return age.Seconds()
		}))
	})
}

// PortserverOutcomes are the outcomes of portserver requests that
// WatchPortserver exports, in order.
var PortserverOutcomes = []string{"answered", "malformed", "refused", "exhausted", "failed"}

// WatchPortserver exports the portserver listener's request counts by
// outcome (portledger_portserver_requests_total{outcome=...}), read from
// counts at each scrape: counts returns one total per PortserverOutcomes
// entry. Only the first call counts.
func (m *Metrics) WatchPortserver(counts func() []uint64) {
	m.portserverOnce.Do(func() {
		for i, outcome := range PortserverOutcomes {
			m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
				Namespace: metricsNamespace, Name: "portserver_requests_total",
				Help:        "Portserver protocol requests by outcome: answered with a port, malformed (not a pid line, too long or too slow), refused (no such process, init, the daemon, another user's), exhausted (no free port) or failed.",
				ConstLabels: prometheus.Labels{"outcome": outcome},
			}, func() float64 {
				if c := counts(); i < len(c) {
					return float64(c[i])
				}
				return 0
			}))
		}
	})
}

// Committed counts a commit's events and times it (commands.Observer).
func (m *Metrics) Committed(events []ledger.Event, group int, took time.Duration) {
	m.commitSeconds.Observe(took.Seconds())
	m.groupSize.Observe(float64(group))
	for i := range events {
		e := &events[i]
		if c := m.eventsByType[e.Type]; c != nil {
			c.Inc()
		} else {
			m.events.WithLabelValues(string(e.Type)).Inc()
		}
		switch e.Type {
		case ledger.EventAllocated:
			m.allocations.Inc()
		case ledger.EventReleased:
			m.releaseByCls[releaseClass(e.Released)].Inc()
		case ledger.EventHealthChanged:
			if e.HealthChanged != nil {
				if c := m.healthByState[e.HealthChanged.To]; c != nil {
					c.Inc()
				}
			}
		case ledger.EventConflictDetected:
			m.foreignSeen.Inc()
		}
	}
}

// AllocateRefused counts a refused allocation by its code
// (commands.Observer).
func (m *Metrics) AllocateRefused(code string) {
	m.refused.WithLabelValues(code).Inc()
}

// Sweep records one completed watchdog sweep: the watchdog's OnSweep hook.
func (m *Metrics) Sweep(took time.Duration) {
	m.sweeps.Inc()
	m.sweepSeconds.Observe(took.Seconds())
}

// handler serves the registry in the Prometheus text format.
func (m *Metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// streamOpened counts an open event stream; the returned func counts it
// closed. Safe on a nil *Metrics.
func (m *Metrics) streamOpened() func() {
	if m == nil {
		return func() {}
	}
	m.subscribers.Inc()
	return m.subscribers.Dec
}

// knownMethods are the methods that get their own label value; any other
// is counted as "other", so a client cannot grow the label set.
var knownMethods = map[string]bool{
	http.MethodGet: true, http.MethodHead: true, http.MethodPost: true, http.MethodPut: true,
	http.MethodDelete: true, http.MethodPatch: true, http.MethodOptions: true,
}

// instrument counts and times every request by chi's route pattern (the
// pattern, never the path, so that ports do not become label values).
func (m *Metrics) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ww := &statusWriter{ResponseWriter: w}
		defer func() {
			route := "unmatched"
			if rc := chi.RouteContext(r.Context()); rc != nil {
				if p := rc.RoutePattern(); p != "" {
					route = p
				}
			}
			method := r.Method
			if !knownMethods[method] {
				method = "other"
			}
			status := ww.status
			if status == 0 {
				status = http.StatusOK
			}
			class := string(rune('0'+status/100)) + "xx"
			m.httpRequests.WithLabelValues(route, method, class).Inc()
			m.httpSeconds.WithLabelValues(route).Observe(time.Since(start).Seconds())
		}()
		next.ServeHTTP(ww, r)
	})
}

// stateCollector reads the registry and the watchdog at each scrape, so the
// gauges are the registry's own numbers, never a second count kept apart.
type stateCollector struct{ m *Metrics }

var (
	descInRange = prometheus.NewDesc(metricsNamespace+"_ports_in_range",
		"Ports in the managed range.", nil, nil)
	descAllocated = prometheus.NewDesc(metricsNamespace+"_ports_allocated",
		"Ports held by an allocation.", nil, nil)
	descAvailable = prometheus.NewDesc(metricsNamespace+"_ports_available",
		"Ports of the range that no allocation holds.", nil, nil)
	descByHealth = prometheus.NewDesc(metricsNamespace+"_allocations_by_health",
		"Live allocations by health state.", []string{"state"}, nil)
	descForeign = prometheus.NewDesc(metricsNamespace+"_foreign_listeners",
		"Foreign listeners recorded in the managed range now.", nil, nil)
	descWatchdogUp = prometheus.NewDesc(metricsNamespace+"_watchdog_running",
		"1 when the watchdog's periodic sweeps run.", nil, nil)
	descLastSweep = prometheus.NewDesc(metricsNamespace+"_watchdog_last_sweep_timestamp_seconds",
		"Unix time of the last watchdog sweep (0: none yet).", nil, nil)
)

// Describe sends the descriptions of the scrape-time gauges.
func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descInRange, descAllocated, descAvailable, descByHealth, descForeign, descWatchdogUp, descLastSweep} {
		ch <- d
	}
}

// Collect reads the registry now and sends the gauges.
func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	src := c.m.state.Load()
	if src == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := src.svc.Status(ctx, ulid.Zero)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(descAllocated, err)
		return
	}
	pm := st.PortManager
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	gauge(descInRange, float64(pm.TotalPorts))
	gauge(descAllocated, float64(pm.AllocatedPorts))
	gauge(descAvailable, float64(pm.AvailablePorts))
	gauge(descForeign, float64(len(pm.Conflicts)))
	byHealth := map[ledger.Health]int{ledger.HealthStarting: 0, ledger.HealthHealthy: 0, ledger.HealthUnhealthy: 0, ledger.HealthDead: 0}
	for _, a := range pm.Allocations {
		h := a.HealthStatus
		if _, ok := byHealth[h]; !ok {
			h = ledger.HealthStarting
		}
		byHealth[h]++
	}
	for h, n := range byHealth {
		gauge(descByHealth, float64(n), string(h))
	}
	if src.wd != nil {
		ws := src.wd.Status()
		up, last := 0.0, 0.0
		if ws.Running {
			up = 1
		}
		if ws.LastSweepAt != nil {
			last = float64(ws.LastSweepAt.UnixNano()) / 1e9
		}
		gauge(descWatchdogUp, up)
		gauge(descLastSweep, last)
	}
}

// statusWriter remembers the status a handler answered with, for
// instrument. Unwrap lets http.ResponseController reach the connection's
// own writer (the event stream flushes through it).
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	// 1xx answers (103 Early Hints) come before the final one; 101 is final.
	if w.status == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
