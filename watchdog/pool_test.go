package watchdog_test

import (
	"context"
	"fmt"
	"github.com/portledger/portledger/internal/ledgertest"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/matryer/is"
	"github.com/portledger/portledger/commands"
	"github.com/portledger/portledger/ledger"
	"github.com/portledger/portledger/watchdog"
	"github.com/shirou/gopsutil/v3/process"
)

// TestManyEndpointsInOneSweep probes more endpoints than the fetch pool has
// workers, and submits their transitions together.
func TestManyEndpointsInOneSweep(t *testing.T) {
	is := is.New(t)
	ctx := context.Background()
	good := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(good.Close)
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) }))
	t.Cleanup(bad.Close)
	svc := mustLedger(t, ledger.Range{Lo: 23300, Hi: 23399}, commands.Config{})
	const n = 80
	wantBad := map[int]bool{}
	pid := ledgertest.Sleeper(t)
	for i := range n {
		url := good.URL
		if i%2 == 1 {
			url = bad.URL
		}
		a, err := svc.Allocate(ctx, ledger.AllocateRequest{ServiceName: fmt.Sprintf("s%d", i), HealthURL: url, PID: pid})
		is.NoErr(err) // allocate
		listenOn(t, a.Port)
		wantBad[a.Port] = i%2 == 1
	}
	w := watchdog.New(svc, fast())
	for range 2 {
		_, err := w.Sweep(ctx)
		is.NoErr(err) // sweep
	}
	all, err := svc.Allocations(ctx, ledger.AllocationQuery{})
	is.NoErr(err)
	is.Equal(len(all), n)
	for _, a := range all {
		want := ledger.HealthHealthy
		if wantBad[a.Port] {
			want = ledger.HealthUnhealthy
		}
		is.Equal(a.HealthStatus, want) // state of each allocation
	}
	is.Equal(w.Status().IssuesDetected, int64(n/2)) // one issue per failing endpoint
	is.Equal(w.Status().MonitoredPorts, n)
}

// TestZombieCountsAsDead kills a child without reaping it: its PID stays in
// the process table, but nothing runs there.
func TestZombieCountsAsDead(t *testing.T) {
	is := is.New(t)
	ctx := context.Background()
	svc := mustLedger(t, ledger.Range{Lo: 23400, Hi: 23409}, commands.Config{})
	child := startChild(t, "sleep")
	pid := child.Process.Pid
	a, err := svc.Allocate(ctx, ledger.AllocateRequest{ServiceName: "zombie", PID: pid})
	is.NoErr(err)
	opts := fast()
	opts.StartGrace = time.Hour
	w := watchdog.New(svc, opts)
	res, err := w.Sweep(ctx)
	is.NoErr(err)
	is.True(res.Ports[0].Alive) // alive before the kill

	is.NoErr(child.Process.Kill()) // no Wait: the child stays a zombie
	deadline := time.Now().Add(30 * time.Second)
	for {
		p, err := process.NewProcess(int32(pid))
		is.NoErr(err) // a zombie still has a process entry
		st, _ := p.Status()
		if slices.Contains(st, process.Zombie) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid %d: not a zombie after 30s: %v", pid, st)
		}
		time.Sleep(time.Millisecond)
	}
	n := sweepUntil(t, w, svc, a.Port, "released", released)
	is.Equal(n, 2) // two checks in a row
	rel := events(t, svc, a.Port, ledger.EventReleased)
	is.Equal(len(rel), 1)
	is.True(strings.Contains(rel[0].Released.Reason, "zombie")) // reason: %s
}
