package watchdog_test

import (
	"context"
	"fmt"
	"github.com/portledger/portledger/internal/ledgertest"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/portledger/portledger/commands"
	"github.com/portledger/portledger/ledger"
	"github.com/portledger/portledger/watchdog"
)

// benchLedger allocates n ports in [lo, lo+2n) through the real commands
// ledger: the first half held by this process and listening (healthy), the
// next quarter held by this process but not listening (unhealthy), the rest
// without a process (starting, within their lease). withURL of the healthy
// ones also name a health URL on a loopback test server. It sweeps until the
// states have settled, so the benchmark measures a steady daemon.
func benchLedger(b *testing.B, lo, n, withURL int) *watchdog.Watchdog {
	b.Helper()
	ctx := context.Background()
	svc := mustLedger(b, ledger.Range{Lo: lo, Hi: lo + 2*n - 1}, commands.Config{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	b.Cleanup(srv.Close)

	pid := ledgertest.Sleeper(b)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failed error
	next := make(chan int)
	for range 16 { // concurrent callers share the ledger's group commits
		wg.Go(func() {
			for i := range next {
				req := ledger.AllocateRequest{ServiceName: fmt.Sprintf("svc-%d", i)}
				if i < 3*n/4 {
					req.PID = pid
				}
				if i < withURL {
					req.HealthURL = srv.URL + "/health"
				}
				a, err := svc.Allocate(ctx, req)
				if err == nil && i < n/2 {
					listenOn(b, a.Port)
				}
				if err != nil {
					mu.Lock()
					failed = err
					mu.Unlock()
				}
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	if failed != nil {
		b.Fatal(failed)
	}
	opts := watchdog.Options{StartGrace: -1}
	w := watchdog.New(svc, opts)
	for range 3 {
		if _, err := w.Sweep(ctx); err != nil {
			b.Fatal(err)
		}
	}
	res, err := w.Sweep(ctx)
	if err != nil {
		b.Fatal(err)
	}
	if len(res.Ports) != n {
		b.Fatalf("swept %d allocations, want %d", len(res.Ports), n)
	}
	count := map[ledger.Health]int{}
	for _, p := range res.Ports {
		count[p.Health]++
		if p.Action != "" {
			b.Fatalf("port %d: %s in a steady state", p.Port, p.Action)
		}
	}
	if count[ledger.HealthHealthy] != n/2 || count[ledger.HealthUnhealthy] != n/4 {
		b.Fatalf("states did not settle: %v", count)
	}
	return w
}

func benchSweep(b *testing.B, w *watchdog.Watchdog) {
	ctx := context.Background()
	b.ReportAllocs()
	cpu0 := cpuTime()
	b.ResetTimer()
	for b.Loop() {
		if _, err := w.Sweep(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/op")
}

// BenchmarkSweep1000 sweeps 1,000 allocations: the design's target is 200 ms.
func BenchmarkSweep1000(b *testing.B) {
	benchSweep(b, benchLedger(b, 20000, 1000, 0))
}

// BenchmarkSweep1000Endpoints is the same with a health URL on each of the
// 500 healthy allocations (the test server's CPU is in cpu-ns/op too).
func BenchmarkSweep1000Endpoints(b *testing.B) {
	benchSweep(b, benchLedger(b, 22000, 1000, 500))
}

// BenchmarkSweep100 is an idle daemon's work: one sweep of 100 allocations
// every Interval. cpu-ns/op divided by 30 s is its share of a core.
func BenchmarkSweep100(b *testing.B) {
	benchSweep(b, benchLedger(b, 24000, 100, 0))
}
