package watchdog_test

import (
	"context"
	"fmt"
	"github.com/portledger/portledger/internal/ledgertest"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/matryer/is"
	"github.com/portledger/portledger/commands"
	"github.com/portledger/portledger/ledger"
	"github.com/portledger/portledger/watchdog"
)

// The tests use ports below the kernel's ephemeral range (32768+), so no
// outgoing connection of another test lands in them by chance.

func TestKilledProcessIsReleased(t *testing.T) {
	is := is.New(t)
	ctx := context.Background()
	svc := mustLedger(t, ledger.Range{Lo: 23000, Hi: 23009}, commands.Config{})
	a, err := svc.Allocate(ctx, ledger.AllocateRequest{ServiceName: "api", StartedBy: "test", Purpose: "killed"})
	is.NoErr(err) // allocate
	child := startChild(t, fmt.Sprintf("listen:%d", a.Port))
	pid := child.Process.Pid
	_, err = svc.RegisterPID(ctx, a.Port, pid)
	is.NoErr(err) // register pid

	w := watchdog.New(svc, fast())
	sweepUntil(t, w, svc, a.Port, "healthy", health(ledger.HealthHealthy))
	res, err := w.Sweep(ctx)
	is.NoErr(err)                                         // sweep while healthy
	is.Equal(len(res.Ports), 1)                           // one allocation probed
	is.True(res.Ports[0].Alive && res.Ports[0].Listening) // probe saw the live listener

	kill(t, child)
	n := sweepUntil(t, w, svc, a.Port, "released", released)
	is.Equal(n, 2) // released on the second failed check in a row

	rel := events(t, svc, a.Port, ledger.EventReleased)
	is.Equal(len(rel), 1)                                                   // one release
	is.Equal(rel[0].Released.ReleasedBy, watchdog.ReleasedBy)               // released by the watchdog
	is.Equal(rel[0].Released.Reason, fmt.Sprintf("process %d exited", pid)) // the reason says what happened
	hc := events(t, svc, a.Port, ledger.EventHealthChanged)
	is.Equal(len(hc), 2)                                   // starting->healthy, healthy->dead
	is.Equal(hc[0].HealthChanged.To, ledger.HealthHealthy) // first transition
	is.Equal(hc[1].HealthChanged.From, ledger.HealthHealthy)
	is.Equal(hc[1].HealthChanged.To, ledger.HealthDead) // recorded dead before the release
	is.True(!hc[1].HealthChanged.Alive)                 // the probe found no process
	is.Equal(w.Status().IssuesDetected, int64(1))       // one dead service, one issue
}

func TestAliveButNotListeningIsUnhealthyNeverReleased(t *testing.T) {
	is := is.New(t)
	ctx := context.Background()
	svc := mustLedger(t, ledger.Range{Lo: 23010, Hi: 23019}, commands.Config{})
	child := startChild(t, "sleep")
	a, err := svc.Allocate(ctx, ledger.AllocateRequest{ServiceName: "worker", PID: child.Process.Pid})
	is.NoErr(err) // allocate with a live pid

	opts := fast()
	opts.StartGrace = 5 * time.Millisecond
	w := watchdog.New(svc, opts)
	sweepUntil(t, w, svc, a.Port, "unhealthy", health(ledger.HealthUnhealthy))
	for range 5 {
		res, err := w.Sweep(ctx)
		is.NoErr(err) // sweep
		is.True(res.Ports[0].Alive && !res.Ports[0].Listening)
		is.Equal(res.Ports[0].Health, ledger.HealthUnhealthy) // stays unhealthy
		is.Equal(res.Ports[0].Action, "")                     // and is never released
	}
	got, err := svc.Allocation(ctx, a.Port, ledgerNow)
	is.NoErr(err) // still allocated
	is.Equal(got.HealthStatus, ledger.HealthUnhealthy)
	hc := events(t, svc, a.Port, ledger.EventHealthChanged)
	is.Equal(len(hc), 1)                                                     // a steady unhealthy service adds nothing after its transition
	is.True(strings.Contains(hc[0].HealthChanged.Reason, "nothing listens")) // reason: %s
	is.Equal(len(events(t, svc, a.Port, ledger.EventReleased)), 0)           // not released
}

func TestStartGraceAndLeaseFollowTheClock(t *testing.T) {
	is := is.New(t)
	ctx := context.Background()
	svc := mustLedger(t, ledger.Range{Lo: 23020, Hi: 23029}, commands.Config{})
	child := startChild(t, "sleep")
	slow, err := svc.Allocate(ctx, ledger.AllocateRequest{ServiceName: "slow", PID: child.Process.Pid})
	is.NoErr(err) // allocate a service that is slow to listen
	idle, err := svc.Allocate(ctx, ledger.AllocateRequest{ServiceName: "idle"})
	is.NoErr(err) // allocate a port nobody uses

	clk := ledgertest.NewClock(time.Time{}, 0)
	opts := fast()
	opts.StartGrace = watchdog.DefaultStartGrace
	opts.Now = clk.Now
	w := watchdog.New(svc, opts)

	clk.Set(slow.AllocatedAt.Add(59 * time.Second))
	for range 3 {
		_, err := w.Sweep(ctx)
		is.NoErr(err) // sweep within the grace
	}
	got, err := svc.Allocation(ctx, slow.Port, ledgerNow)
	is.NoErr(err)
	is.Equal(got.HealthStatus, ledger.HealthStarting) // within the start grace, not listening is no failure

	clk.Set(slow.AllocatedAt.Add(61 * time.Second))
	sweepUntil(t, w, svc, slow.Port, "unhealthy", health(ledger.HealthUnhealthy))
	got, err = svc.Allocation(ctx, idle.Port, ledgerNow)
	is.NoErr(err)                                     // the idle port is kept within its lease
	is.Equal(got.HealthStatus, ledger.HealthStarting) // and is not called unhealthy

	clk.Set(idle.AllocatedAt.Add(watchdog.DefaultLease + time.Second))
	res, err := w.Sweep(ctx)
	is.NoErr(err) // sweep after the lease
	is.Equal(len(res.Ports), 2)
	is.Equal(res.Ports[1].Port, idle.Port)
	is.Equal(res.Ports[1].Action, "released") // lease ran out
	rel := events(t, svc, idle.Port, ledger.EventReleased)
	is.Equal(len(rel), 1)
	is.Equal(rel[0].Released.ReleasedBy, watchdog.ReleasedBy)
	is.True(strings.HasPrefix(rel[0].Released.Reason, "lease of 10m0s ran out")) // reason: %s
	// A live process that never listened does not pin its port either: its
	// lease ends it too.
	is.Equal(res.Ports[0].Port, slow.Port)
	is.Equal(res.Ports[0].Action, "released") // the live process that never listened is released by its lease
	rel = events(t, svc, slow.Port, ledger.EventReleased)
	is.Equal(len(rel), 1)
	is.Equal(rel[0].Released.Reason, fmt.Sprintf("lease of 10m0s ran out: process %d never listened on port %d", child.Process.Pid, slow.Port))
	is.Equal(rel[0].Actor.Via, ledger.ViaWatchdog) // the watchdog is the release's actor
}

func TestRecycledPIDCountsAsDead(t *testing.T) {
	is := is.New(t)
	ctx := context.Background()
	// PID reuse cannot be forced on this machine, so the ledger is told a
	// start time an hour before the real one: to the watchdog's real
	// gopsutil check the PID then names a different process.
	cfg := commands.Config{Process: func(pid int) (commands.ProcessInfo, error) {
		info, err := commands.LookupProcess(pid)
		info.StartedAt -= time.Hour.Milliseconds()
		return info, err
	}}
	svc := mustLedger(t, ledger.Range{Lo: 23030, Hi: 23039}, cfg)
	a, err := svc.Allocate(ctx, ledger.AllocateRequest{ServiceName: "api"})
	is.NoErr(err) // allocate
	child := startChild(t, fmt.Sprintf("listen:%d", a.Port))
	pid := child.Process.Pid
	_, err = svc.RegisterPID(ctx, a.Port, pid)
	is.NoErr(err) // register pid with the wrong start time

	w := watchdog.New(svc, fast())
	res, err := w.Sweep(ctx)
	is.NoErr(err)
	is.True(!res.Ports[0].Alive)    // a live PID with another start time is not our process
	is.True(res.Ports[0].Listening) // even though the port listens
	n := sweepUntil(t, w, svc, a.Port, "released", released)
	is.Equal(n, 1) // the second check in a row released it

	rel := events(t, svc, a.Port, ledger.EventReleased)
	is.Equal(len(rel), 1)
	want := fmt.Sprintf("process %d exited (pid %d now belongs to a process started at", pid, pid)
	is.True(strings.HasPrefix(rel[0].Released.Reason, want))            // reason names the recycled pid
	is.Equal(len(events(t, svc, a.Port, ledger.EventHealthChanged)), 1) // starting->dead only
}

func TestForeignListenerIsRecordedOnce(t *testing.T) {
	is := is.New(t)
	ctx := context.Background()
	svc := mustLedger(t, ledger.Range{Lo: 23040, Hi: 23043}, commands.Config{})
	squatter := startChild(t, "listen:23040")
	listenOn(t, 23042) // our own listener in the range is never a conflict

	w := watchdog.New(svc, fast())
	for i := range 3 {
		res, err := w.Sweep(ctx)
		is.NoErr(err) // sweep
		var mine []ledger.Conflict
		for _, c := range res.Conflicts {
			if c.Port == 23040 || c.Port == 23042 {
				mine = append(mine, c)
			}
		}
		if i == 0 {
			is.Equal(len(mine), 1)                             // the first sweep records it
			is.Equal(mine[0].PID, squatter.Process.Pid)        // with its owner
			is.True(strings.Contains(mine[0].Command, "test")) // and its command line: %s
		} else {
			is.Equal(len(mine), 0) // later sweeps do not record it again
		}
	}
	cd := events(t, svc, 23040, ledger.EventConflictDetected)
	is.Equal(len(cd), 1) // exactly one conflict_detected event
	is.Equal(cd[0].Conflict.PID, squatter.Process.Pid)
	is.Equal(len(events(t, svc, 23042, ledger.EventConflictDetected)), 0) // our own socket is not recorded
	is.True(w.Status().IssuesDetected >= 1)                               // the conflict is an issue

	st, err := svc.Status(ctx, ledgerNow)
	is.NoErr(err)
	is.True(len(st.PortManager.Conflicts) >= 1) // the registry lists it
	a, err := svc.Allocate(ctx, ledger.AllocateRequest{ServiceName: "next"})
	is.NoErr(err)            // allocate
	is.True(a.Port != 23040) // never the squatted port
	is.True(a.Port != 23042) // nor one we listen on

	// The ledger skips a recorded conflict port even once its squatter has
	// gone and the OS would let it bind.
	kill(t, squatter)
	b, err := svc.Allocate(ctx, ledger.AllocateRequest{ServiceName: "after"})
	is.NoErr(err)            // allocate
	is.True(b.Port != 23040) // the recorded conflict port is still skipped
}

func TestHealthEndpoint(t *testing.T) {
	tests := []struct {
		name     string
		handler  http.HandlerFunc
		want     ledger.Health
		endpoint string
	}{
		{"ok", func(w http.ResponseWriter, r *http.Request) {}, ledger.HealthHealthy, "ok"},
		{"redirect", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/elsewhere", http.StatusFound) }, ledger.HealthHealthy, "ok"},
		{"error", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusInternalServerError) }, ledger.HealthUnhealthy, "status 500"},
		{"hang", func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }, ledger.HealthUnhealthy, "no answer within 100ms"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			ctx := context.Background()
			srv := httptest.NewServer(tt.handler)
			t.Cleanup(srv.Close)
			lo := 23050 + 10*i
			svc := mustLedger(t, ledger.Range{Lo: lo, Hi: lo + 9}, commands.Config{})
			a, err := svc.Allocate(ctx, ledger.AllocateRequest{ServiceName: "web", HealthURL: srv.URL + "/health"})
			is.NoErr(err) // allocate with a health URL
			listenOn(t, a.Port)

			opts := fast()
			opts.HTTPTimeout = 100 * time.Millisecond
			w := watchdog.New(svc, opts)
			sweepUntil(t, w, svc, a.Port, string(tt.want), health(tt.want))
			res, err := w.Sweep(ctx)
			is.NoErr(err)
			is.Equal(res.Ports[0].Endpoint, tt.endpoint) // what the endpoint answered
			hc := events(t, svc, a.Port, ledger.EventHealthChanged)
			is.Equal(len(hc), 1) // one transition, then silence
			is.Equal(hc[0].HealthChanged.Endpoint, tt.endpoint)
		})
	}
}

func TestRestartEmitsNoTransitions(t *testing.T) {
	is := is.New(t)
	ctx := context.Background()
	svc := mustLedger(t, ledger.Range{Lo: 23100, Hi: 23109}, commands.Config{})
	up, err := svc.Allocate(ctx, ledger.AllocateRequest{ServiceName: "up"})
	is.NoErr(err)
	upChild := startChild(t, fmt.Sprintf("listen:%d", up.Port))
	_, err = svc.RegisterPID(ctx, up.Port, upChild.Process.Pid)
	is.NoErr(err)
	stuck := startChild(t, "sleep")
	down, err := svc.Allocate(ctx, ledger.AllocateRequest{ServiceName: "down", PID: stuck.Process.Pid})
	is.NoErr(err)
	idle, err := svc.Allocate(ctx, ledger.AllocateRequest{ServiceName: "idle"})
	is.NoErr(err)

	first := watchdog.New(svc, fast())
	sweepUntil(t, first, svc, up.Port, "healthy", health(ledger.HealthHealthy))
	sweepUntil(t, first, svc, down.Port, "unhealthy", health(ledger.HealthUnhealthy))
	before, err := svc.History(ctx, ledger.HistoryQuery{})
	is.NoErr(err)

	restarted := watchdog.New(svc, fast()) // a new daemon over the same ledger
	for range 4 {
		res, err := restarted.Sweep(ctx)
		is.NoErr(err)
		is.Equal(len(res.Ports), 3) // all three still allocated
	}
	after, err := svc.History(ctx, ledger.HistoryQuery{})
	is.NoErr(err)
	is.Equal(len(after), len(before))                     // no event replayed as new
	is.Equal(restarted.Status().IssuesDetected, int64(0)) // nothing new to report
	is.Equal(restarted.Status().ChecksPerformed, int64(4))
	is.Equal(restarted.Status().MonitoredPorts, 3)
	got, err := svc.Allocation(ctx, idle.Port, ledgerNow)
	is.NoErr(err)
	is.Equal(got.HealthStatus, ledger.HealthStarting)
}

func TestRunAlongsideConcurrentAllocations(t *testing.T) {
	is := is.New(t)
	svc := mustLedger(t, ledger.Range{Lo: 23200, Hi: 23299}, commands.Config{})
	opts := fast()
	opts.Interval = time.Millisecond
	w := watchdog.New(svc, opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()

	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := range 16 {
		wg.Go(func() {
			for range 25 {
				a, err := svc.Allocate(ctx, ledger.AllocateRequest{ServiceName: fmt.Sprintf("svc-%d", g)})
				if err != nil {
					errs <- err
					return
				}
				if _, err := w.Sweep(ctx); err != nil { // a manual check while Run sweeps
					errs <- err
					return
				}
				if _, err := svc.Release(ctx, ledger.ReleaseRequest{Port: a.Port, ReleasedBy: "test", EventID: a.EventID}); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		is.NoErr(err) // allocate, sweep, release
	}
	deadline := time.Now().Add(30 * time.Second)
	for w.Status().ChecksPerformed < 16*25+2 {
		if time.Now().After(deadline) {
			t.Fatalf("Run did not sweep: %+v", w.Status())
		}
		time.Sleep(time.Millisecond)
	}
	st := w.Status()
	is.True(st.Running)               // Run is active
	is.Equal(st.CheckInterval, 0.001) // seconds
	is.True(st.LastSweepAt != nil)    // a sweep time is known
	cancel()
	is.NoErr(<-done)             // Run returns nil on cancel
	is.True(!w.Status().Running) // and says so

	all, err := svc.History(context.Background(), ledger.HistoryQuery{})
	is.NoErr(err)
	for _, e := range all {
		if e.Type == ledger.EventReleased {
			is.Equal(e.Released.ReleasedBy, "test") // the watchdog released nothing of a live ledger
		}
		is.True(e.Type != ledger.EventConflictDetected) // the ledger's own bind probes are no conflicts
	}
}
