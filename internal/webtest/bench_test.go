package webtest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/portledger/portledger/commands"
	"github.com/portledger/portledger/internal/fixture"
	"github.com/portledger/portledger/ledger"
	"github.com/portledger/portledger/projection"
)

// benchAllocs is how many live allocations the dashboard and metrics
// benchmarks draw and export.
const benchAllocs = 1000

// benchRange holds the fixture's ports (8000-8100) and room for
// benchAllocs more.
const benchRange = "8000-9199"

// bench1M is a 1M-event log (the fixture the other 1M-event benchmarks
// read: 100 events a minute for about a week), its projection files caught
// up, with benchAllocs live allocations on top.
var bench1M = fixture.Shared{
	Spec: fixture.Spec{
		Events:        fixture.DefaultEvents,
		Batch:         100,
		Start:         time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC),
		Step:          time.Minute,
		SnapshotEvery: commands.DefaultSnapshotEvery,
		NewProjection: func() fixture.Projection { return projection.NewRegistry() },
	},
	After: fillAllocations,
}

// fillAllocations widens the fixture's range to benchRange and allocates
// until benchAllocs ports are held, then writes the projection files.
func fillAllocations(layout ledger.Layout) error {
	log, err := ledger.Open(layout.DB(), ledger.Options{NoSync: true})
	if err != nil {
		return err
	}
	defer log.Close()
	// The ports need not be free on this machine: a fixture, not a probe.
	svc, err := commands.New(commands.Config{Log: log, PortFree: func(int) error { return nil }})
	if err != nil {
		return err
	}
	ctx := context.Background()
	rng, err := ledger.ParseRange(benchRange)
	if err != nil {
		return err
	}
	if err := svc.SetRange(ctx, rng); err != nil {
		svc.Close()
		return err
	}
	need := benchAllocs - len(svc.Registry().Allocs)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1); i <= int64(need); i = next.Add(1) {
				_, err := svc.Allocate(ctx, ledger.AllocateRequest{
					ServiceName: fmt.Sprintf("svc-%03d", i%200), StartedBy: "bench", Purpose: "dashboard benchmark"})
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	svc.Close()
	select {
	case err := <-errs:
		return err
	default:
	}
	files, err := projection.OpenFiles(layout, log)
	if err != nil {
		return err
	}
	defer files.Close()
	_, err = files.CatchUp()
	return err
}

// startBenchDaemon serves the 1M-event log with its benchAllocs allocations.
// The watchdog is kept from releasing the fixture's allocations, whose
// processes do not exist here, during the run.
func startBenchDaemon(b *testing.B) *daemon {
	b.Helper()
	layout := bench1M.Layout(b)
	d := startDaemonRange(b, layout.Dir, benchRange, "--interval", "1h", "--failures", "1000000", "--lease", "100000h")
	st := d.status(b, "")
	if st.PortManager.AllocatedPorts < benchAllocs {
		b.Fatalf("the fixture holds %d allocations, want %d", st.PortManager.AllocatedPorts, benchAllocs)
	}
	return d
}

// percentile returns the p-th percentile of sorted durations.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(float64(len(sorted))*p))]
}

// BenchmarkDashboardFirstDraw loads the page in headless Chromium over
// loopback against a daemon with a 1M-event log and 1,000 allocations, and
// reports the time from the navigation's start until the allocations table
// is drawn, as the page measures it (performance.now() at its first draw).
// The first load, through /login's redirect in a fresh tab, is reported
// apart (first-ms); draw-ms and p95-ms cover the loads of b's loop.
// Target: <= 1 s.
func BenchmarkDashboardFirstDraw(b *testing.B) {
	d := startBenchDaemon(b)
	tb := newTab(b, 60*time.Second)
	// Log in once, as a user does with the URL `ledger serve` printed; the
	// loads below carry the session cookie.
	// That first load, through /login's redirect, is the cold one.
	tb.open(b, dashboardURL(b, d))
	tb.waitJS(b, "the table is drawn", `!!document.body.dataset.drawn`, 30*time.Second)
	first := time.Duration(evalJS[float64](b, tb, `Number(document.body.dataset.drawn)`) * float64(time.Millisecond))
	var draws []time.Duration
	for b.Loop() {
		tb.run(b, "navigate", chromedp.Navigate(d.base+"/"))
		tb.waitJS(b, "the table is drawn", `!!document.body.dataset.drawn`, 30*time.Second)
		ms := evalJS[float64](b, tb, `Number(document.body.dataset.drawn)`)
		if n := evalJS[int](b, tb, `Number(document.getElementById("allocs").dataset.count)`); n < benchAllocs {
			b.Fatalf("the table holds %d allocations, want %d", n, benchAllocs)
		}
		draws = append(draws, time.Duration(ms*float64(time.Millisecond)))
	}
	// The table draws the rows of its scroll window: scrolled to the
	// bottom, it shows the last allocation.
	tb.run(b, "scroll to the end", chromedp.Evaluate[chromedp.Void](`(() => { const s = document.getElementById("alloc-scroll"); s.scrollTop = s.scrollHeight; })()`))
	tb.waitJS(b, "the last rows are drawn", `(() => { const rows = document.querySelectorAll("#alloc-rows tr[data-port]"); return rows.length > 0 && !document.querySelector("#alloc-rows tr.spacer:last-child"); })()`, 10*time.Second)
	slices.Sort(draws)
	b.ReportMetric(float64(first.Microseconds())/1000, "first-ms")
	b.ReportMetric(float64(percentile(draws, 0.5).Microseconds())/1000, "draw-ms")
	b.ReportMetric(float64(percentile(draws, 0.95).Microseconds())/1000, "p95-ms")
	if errs := tb.consoleErrors(); len(errs) > 0 {
		b.Fatalf("page errors: %v", errs)
	}
}

// BenchmarkMetricsScrape scrapes /metrics of a daemon with 1,000
// allocations and a 1M-event log over loopback, body read in full, and
// reports the p50 and p95 of a scrape, and the daemon's CPU time per
// scrape (from /proc: what one scrape a second takes from the writer).
// Target: p95 <= 20 ms.
func BenchmarkMetricsScrape(b *testing.B) {
	d := startBenchDaemon(b)
	var lat []time.Duration
	var size int
	req, err := http.NewRequest(http.MethodGet, d.base+"/metrics", nil)
	if err != nil {
		b.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+d.Token(b))
	cpu0 := procCPU(b, d.Pid())
	for b.Loop() {
		t0 := time.Now()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			b.Fatalf("GET /metrics: %v %d", err, resp.StatusCode)
		}
		lat = append(lat, time.Since(t0))
		size = len(body)
	}
	cpu := procCPU(b, d.Pid()) - cpu0
	slices.Sort(lat)
	b.ReportMetric(float64(cpu.Microseconds())/1000/float64(len(lat)), "daemon-cpu-ms/scrape")
	b.ReportMetric(float64(percentile(lat, 0.5).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(percentile(lat, 0.95).Microseconds())/1000, "p95-ms")
	b.ReportMetric(float64(size), "bytes")
}

// procCPU returns the user and system CPU time of a process (Linux).
func procCPU(tb testing.TB, pid int) time.Duration {
	tb.Helper()
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		tb.Fatal(err)
	}
	// The fields after the command name, which ends with the last ')':
	// utime and stime are the 12th and 13th, in clock ticks (100 a second).
	f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		tb.Fatalf("/proc/%d/stat: %v %v", pid, err1, err2)
	}
	return time.Duration(ut+st) * 10 * time.Millisecond
}
