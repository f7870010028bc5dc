package webtest

import (
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/matryer/is"
	"github.com/portledger/portledger/internal/testbin"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape fetches /metrics and parses it with the Prometheus client's own
// text parser.
func scrape(tb testing.TB, d *daemon) map[string]*dto.MetricFamily {
	tb.Helper()
	req, err := http.NewRequest(http.MethodGet, d.base+"/metrics", nil)
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+d.Token(tb))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		tb.Fatalf("GET /metrics: %s: %s", resp.Status, body)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		tb.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// samples flattens the counters and histograms of fams (counter values,
// histogram counts and sums) into name{labels} -> value.
func samples(fams map[string]*dto.MetricFamily) map[string]float64 {
	out := map[string]float64{}
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			sort.Strings(labels)
			key := name + "{" + strings.Join(labels, ",") + "}"
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				out[key] = m.GetCounter().GetValue()
			case dto.MetricType_HISTOGRAM:
				out[key+"_count"] = float64(m.GetHistogram().GetSampleCount())
				out[key+"_sum"] = m.GetHistogram().GetSampleSum()
			}
		}
	}
	return out
}

// value returns the value of the sample of family name whose labels
// include want (name=value pairs), and whether there is one.
func value(fams map[string]*dto.MetricFamily, name string, want ...string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for i := 0; i+1 < len(want); i += 2 {
			if have[want[i]] != want[i+1] {
				continue next
			}
		}
		switch f.GetType() {
		case dto.MetricType_COUNTER:
			return m.GetCounter().GetValue(), true
		case dto.MetricType_GAUGE:
			return m.GetGauge().GetValue(), true
		case dto.MetricType_HISTOGRAM:
			return float64(m.GetHistogram().GetSampleCount()), true
		}
	}
	return 0, false
}

// metricNames are the metrics the daemon must export, with their type.
var metricNames = map[string]dto.MetricType{
	"portledger_build_info":                            dto.MetricType_GAUGE,
	"portledger_ports_in_range":                        dto.MetricType_GAUGE,
	"portledger_ports_allocated":                       dto.MetricType_GAUGE,
	"portledger_ports_available":                       dto.MetricType_GAUGE,
	"portledger_allocations_by_health":                 dto.MetricType_GAUGE,
	"portledger_allocations_total":                     dto.MetricType_COUNTER,
	"portledger_releases_total":                        dto.MetricType_COUNTER,
	"portledger_allocations_refused_total":             dto.MetricType_COUNTER,
	"portledger_watchdog_sweeps_total":                 dto.MetricType_COUNTER,
	"portledger_watchdog_sweep_duration_seconds":       dto.MetricType_HISTOGRAM,
	"portledger_watchdog_running":                      dto.MetricType_GAUGE,
	"portledger_watchdog_last_sweep_timestamp_seconds": dto.MetricType_GAUGE,
	"portledger_health_transitions_total":              dto.MetricType_COUNTER,
	"portledger_foreign_listeners":                     dto.MetricType_GAUGE,
	"portledger_foreign_listeners_detected_total":      dto.MetricType_COUNTER,
	"portledger_events_appended_total":                 dto.MetricType_COUNTER,
	"portledger_commit_duration_seconds":               dto.MetricType_HISTOGRAM,
	"portledger_commit_group_size":                     dto.MetricType_HISTOGRAM,
	"portledger_log_size_bytes":                        dto.MetricType_GAUGE,
	"portledger_http_requests_total":                   dto.MetricType_COUNTER,
	"portledger_http_request_duration_seconds":         dto.MetricType_HISTOGRAM,
	"portledger_sse_subscribers":                       dto.MetricType_GAUGE,
}

// TestMetricsAcrossAllocateReleaseSweep scrapes a real daemon's /metrics
// around an allocation, a refused allocation, a release and a sweep: every
// metric is there with its type, counters never go down, the ones for what
// happened go up, and the gauges equal `ledger status`.
func TestMetricsAcrossAllocateReleaseSweep(t *testing.T) {
	is := is.New(t)
	d := startDaemon(t, t.TempDir(), "--interval", "1h")
	d.allocate(t, "warm") // a first commit, so the commit histograms have a sample

	before := scrape(t, d)
	for name, typ := range metricNames {
		f := before[name]
		if f == nil {
			t.Errorf("metric %s is missing", name)
			continue
		}
		is.Equal(f.GetType(), typ) // metric type
	}
	for name, f := range before {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "port", "pid", "service", "service_name", "path":
					t.Errorf("%s has an unbounded label %s", name, l.GetName())
				}
			}
		}
	}
	v, ok := value(before, "portledger_build_info")
	is.True(ok && v == 1) // build info is 1

	port := d.allocate(t, "api")
	refusedBefore, _ := value(before, "portledger_allocations_refused_total", "code", "conflict")
	_, _, code := testbin.Run(t, bins.Command(t, d.Data, webRange, "allocate", "--service", "other", "--port", strconv.Itoa(port)))
	is.Equal(code, 1) // a held port is refused
	mid := scrape(t, d)
	d.ledger(t, "release", strconv.Itoa(port), "--reason", "done")
	d.ledger(t, "check")
	after := scrape(t, d)

	// Counters and histogram counts only grow.
	prev := samples(before)
	for _, scr := range []map[string]float64{samples(mid), samples(after)} {
		for k, old := range prev {
			if now, ok := scr[k]; ok && now < old {
				t.Errorf("%s went down: %v -> %v", k, old, now)
			}
		}
		prev = scr
	}
	grew := []struct {
		name   string
		labels []string
		by     float64
	}{
		{"portledger_allocations_total", nil, 1},
		{"portledger_releases_total", []string{"reason_class", "manual"}, 1},
		{"portledger_allocations_refused_total", []string{"code", "conflict"}, 1},
		{"portledger_events_appended_total", []string{"type", "allocated"}, 1},
		{"portledger_events_appended_total", []string{"type", "released"}, 1},
		{"portledger_watchdog_sweeps_total", nil, 1},
		{"portledger_watchdog_sweep_duration_seconds", nil, 1},
		{"portledger_commit_duration_seconds", nil, 2},
		{"portledger_http_requests_total", []string{"route", "/api/ports/allocations", "method", "POST", "code", "2xx"}, 1},
	}
	for _, g := range grew {
		b, _ := value(before, g.name, g.labels...)
		a, ok := value(after, g.name, g.labels...)
		is.True(ok) // the sample exists
		if a-b < g.by {
			t.Errorf("%s%v grew by %v, want at least %v", g.name, g.labels, a-b, g.by)
		}
	}
	r, _ := value(after, "portledger_allocations_refused_total", "code", "conflict")
	is.True(r > refusedBefore) // the conflict was counted

	// The gauges are the registry's numbers, as `ledger status` shows them.
	st := d.status(t, "")
	pm := st.PortManager
	for name, want := range map[string]int{
		"portledger_ports_in_range":    pm.TotalPorts,
		"portledger_ports_allocated":   pm.AllocatedPorts,
		"portledger_ports_available":   pm.AvailablePorts,
		"portledger_foreign_listeners": len(pm.Conflicts),
	} {
		got, ok := value(after, name)
		is.True(ok)              // gauge present
		is.Equal(int(got), want) // gauge equals ledger status
	}
	alloc, _ := value(mid, "portledger_ports_allocated")
	is.Equal(int(alloc), pm.AllocatedPorts+1) // with api held, one more
	size, _ := value(after, "portledger_log_size_bytes")
	is.True(size > 0) // the log has a size
}

// TestMetricsNeedTheTokenWhereOneIsSet checks that /metrics follows the
// API's access rule: a daemon with a token answers 401 without it.
func TestMetricsNeedTheTokenWhereOneIsSet(t *testing.T) {
	d := startDaemon(t, t.TempDir(), "--token", "s3cret-token-for-metrics")
	tests := []struct {
		name   string
		header string
		want   int
	}{
		{"no token", "", http.StatusUnauthorized},
		{"wrong token", "Bearer nope", http.StatusUnauthorized},
		{"right token", "Bearer s3cret-token-for-metrics", http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			req, err := http.NewRequest(http.MethodGet, d.base+"/metrics", nil)
			is.NoErr(err)
			if tt.header != "" {
				req.Header.Set("Authorization", tt.header)
			}
			resp, err := http.DefaultClient.Do(req)
			is.NoErr(err) // request
			resp.Body.Close()
			is.Equal(resp.StatusCode, tt.want) // status
		})
	}
}
