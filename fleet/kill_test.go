//go:build linux

package fleet_test

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/matryer/is"
	"github.com/oklog/ulid/v2"
	"github.com/portledger/portledger/fleet"
	"github.com/portledger/portledger/fleet/hub"
	"github.com/portledger/portledger/internal/testbin"
	"github.com/portledger/portledger/ledger"
)

// hubProc is a ledger-hub process.
type hubProc struct {
	cmd  *exec.Cmd
	out  *testbin.Buffer
	addr string
	args []string
}

// startHubProc starts the real ledger-hub binary and waits until it takes
// connections.
func startHubProc(tb testing.TB, addr string, args ...string) *hubProc {
	tb.Helper()
	h := &hubProc{addr: addr, args: args}
	h.start(tb)
	tb.Cleanup(func() { h.kill() })
	return h
}

func (h *hubProc) start(tb testing.TB) {
	tb.Helper()
	h.launch(tb)
	h.wait(tb)
}

// launch starts the process without waiting for it.
func (h *hubProc) launch(tb testing.TB) {
	tb.Helper()
	h.out = &testbin.Buffer{}
	h.cmd = exec.Command(bins.Program(tb, "./cmd/ledger-hub"), append([]string{"--listen", h.addr}, h.args...)...)
	h.cmd.Stdout, h.cmd.Stderr = h.out, h.out
	// A hub outlives no test binary, even one killed by its timeout.
	h.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := h.cmd.Start(); err != nil {
		tb.Fatalf("start ledger-hub: %v", err)
	}
}

// wait waits until the hub takes connections and has the stream.
func (h *hubProc) wait(tb testing.TB) {
	tb.Helper()
	waitFor(tb, 30*time.Second, "ledger-hub on "+h.addr+" ready", func() bool {
		return strings.Contains(h.out.String(), "Point each host's daemon at it")
	})
}

// kill SIGKILLs the hub and waits for it.
func (h *hubProc) kill() {
	if h.cmd != nil && h.cmd.ProcessState == nil {
		_ = h.cmd.Process.Signal(syscall.SIGKILL)
		_ = h.cmd.Wait()
	}
}

// load allocates and releases on every host until stop is closed, and
// counts local failures.
type load struct {
	stop     chan struct{}
	wg       sync.WaitGroup
	failures atomic.Int64
	cycles   atomic.Int64
	firstErr atomic.Value
}

func startLoad(hosts []*host) *load {
	l := &load{stop: make(chan struct{})}
	for i, hs := range hosts {
		for w := range 2 {
			l.wg.Add(1)
			go func() {
				defer l.wg.Done()
				ctx := context.Background()
				for n := 0; ; n++ {
					select {
					case <-l.stop:
						return
					default:
					}
					a, err := hs.svc.Allocate(ctx, allocReq(fmt.Sprintf("load-%d-%d-%d", i, w, n%5)))
					if err == nil {
						_, err = hs.svc.Release(ctx, relReq(a.Port, "load"))
					}
					if err != nil {
						l.failures.Add(1)
						l.firstErr.CompareAndSwap(nil, err.Error())
						continue
					}
					l.cycles.Add(1)
				}
			}()
		}
	}
	return l
}

func (l *load) end() {
	close(l.stop)
	l.wg.Wait()
}

// The hub is SIGKILLed while three hosts allocate and release: no local
// allocation fails, and once the hub is back every acknowledged event of
// every host is on the stream exactly once, in log order.
func TestHubKilledUnderLoad(t *testing.T) {
	is := is.New(t)
	addr := testbin.FreeAddr(t)
	hp := startHubProc(t, addr, "--data", t.TempDir())
	url := "nats://" + addr
	hosts := []*host{
		startHost(t, "alpha", url, fleet.PublisherConfig{AckTimeout: time.Second}),
		startHost(t, "beta", url, fleet.PublisherConfig{AckTimeout: time.Second}),
		startHost(t, "gamma", url, fleet.PublisherConfig{AckTimeout: time.Second}),
	}
	ld := startLoad(hosts)
	time.Sleep(400 * time.Millisecond)
	before := ld.cycles.Load()
	hp.kill()
	acked := map[string]ulid.ULID{}
	for _, hs := range hosts {
		acked[hs.name] = hs.pub.Status().Published
	}
	time.Sleep(700 * time.Millisecond)
	during := ld.cycles.Load() - before
	hp.start(t)
	time.Sleep(400 * time.Millisecond)
	ld.end()
	is.Equal(ld.failures.Load(), int64(0)) // local allocation never failed
	t.Logf("cycles: %d before the kill, %d while the hub was down (0.7 s)", before, during)
	is.True(during > 0) // hosts kept allocating while the hub was down
	for _, hs := range hosts {
		hs.waitCaughtUp(t, 20*time.Second)
		ids := logIDs(t, hs.log)
		is.Equal(hostEvents(t, url, hs.name), ids)            // every event once, in log order
		is.True(acked[hs.name].Compare(ids[len(ids)-1]) <= 0) // acknowledged before the kill, so on the stream
	}
}

// fleetRange is the port range of the real daemons of these tests.
const fleetRange = "31300-31399"

// A daemon SIGKILLed between publishing and storing its cursor publishes
// again from its old cursor after restart, and the stream keeps one copy:
// the real `ledger serve`, killed right after its last publish.
func TestDaemonKilledNoDuplicates(t *testing.T) {
	is := is.New(t)
	h := startHub(t, hub.Options{})
	url := h.ClientURL()
	data := t.TempDir()
	ledgerCmd := func(args ...string) *exec.Cmd { return bins.Command(t, data, fleetRange, args...) }
	serve := func() *exec.Cmd {
		out := &testbin.Buffer{}
		cmd := ledgerCmd("serve", "--addr", "", "--fleet", url, "--host", "delta")
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		cmd.Stdout, cmd.Stderr = out, out
		is.NoErr(cmd.Start()) // start ledger serve
		waitFor(t, 10*time.Second, "ledger serve up", func() bool { return strings.Contains(out.String(), "msg=serving") })
		return cmd
	}
	cmd := serve()
	for i := range 20 {
		out, err := ledgerCmd("allocate", "--service", fmt.Sprintf("svc-%d", i%7)).Output()
		is.NoErr(err) // allocate through the daemon
		if i%2 == 1 {
			_, err := ledgerCmd("release", strings.TrimSpace(string(out))).Output()
			is.NoErr(err) // release through the daemon
		}
	}
	// Wait for the last publish, then kill at once: the cursor in the
	// file is older than the stream (saved at most every 100 ms, and not
	// at all for the last events).
	waitFor(t, 10*time.Second, "published", func() bool {
		out, err := ledgerCmd("status", "--json").Output()
		return err == nil && strings.Contains(string(out), `"lag_events": 0`) && strings.Contains(string(out), `"connected": true`)
	})
	is.NoErr(cmd.Process.Signal(syscall.SIGKILL))
	_ = cmd.Wait()
	for range 3 {
		_, err := ledgerCmd("allocate", "--service", "offline").Output()
		is.NoErr(err) // allocation without a daemon, in the file itself
	}
	cmd = serve()
	defer func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() }()
	waitFor(t, 10*time.Second, "lag 0 after restart", func() bool {
		out, err := ledgerCmd("status", "--json").Output()
		return err == nil && strings.Contains(string(out), `"lag_events": 0`) && strings.Contains(string(out), `"connected": true`)
	})
	events := hostEvents(t, url, "delta")
	seen := map[ulid.ULID]bool{}
	for _, id := range events {
		is.True(!seen[id]) // no event twice on the stream
		seen[id] = true
	}
	is.True(len(events) >= 33) // 20 allocations, 10 releases and 3 offline ones, once each
}

func allocReq(service string) ledger.AllocateRequest {
	return ledger.AllocateRequest{ServiceName: service, StartedBy: "load", Purpose: "fleet"}
}

func relReq(port int, reason string) ledger.ReleaseRequest {
	return ledger.ReleaseRequest{Port: port, Reason: reason}
}

// A three-hub cluster (replicas 3) with one hub SIGKILLed under load loses
// no event and keeps answering fleet reads.
func TestClusterLosesAHub(t *testing.T) {
	is := is.New(t)
	var hubs []*hubProc
	var clients, routes []string
	for range 3 {
		clients = append(clients, testbin.FreeAddr(t))
		routes = append(routes, "nats://"+testbin.FreeAddr(t))
	}
	for i := range 3 {
		var others []string
		for j, r := range routes {
			if j != i {
				others = append(others, r)
			}
		}
		h := &hubProc{addr: clients[i], args: []string{"--data", t.TempDir(), "--name", fmt.Sprintf("hub%d", i),
			"--cluster", strings.TrimPrefix(routes[i], "nats://"), "--routes", strings.Join(others, ",")}}
		h.launch(t)
		t.Cleanup(h.kill)
		hubs = append(hubs, h)
	}
	began := time.Now()
	for _, h := range hubs {
		h.wait(t)
	}
	t.Logf("cluster up in %s", time.Since(began))
	url := "nats://" + strings.Join(clients, ",nats://")
	cfg := fleet.PublisherConfig{AckTimeout: 2 * time.Second}
	hosts := []*host{startHost(t, "alpha", url, cfg), startHost(t, "beta", url, cfg), startHost(t, "gamma", url, cfg)}
	steady := map[string]int{}
	for _, hs := range hosts {
		steady[hs.name] = hs.allocate(t, "steady-"+hs.name) // held throughout
		hs.waitCaughtUp(t, 20*time.Second)
	}
	ld := startLoad(hosts)
	time.Sleep(500 * time.Millisecond)
	hubs[0].kill()
	killed := time.Now()
	// Reads go on through the two hubs left.
	r, _ := reader(t, "nats://"+clients[1]+",nats://"+clients[2])
	ctx := testCtx(t)
	waitFor(t, 20*time.Second, "fleet status through the hubs left", func() bool {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second) // a read stalled by the election is tried again
		st, err := r.Status(cctx, ulid.ULID{})
		cancel()
		if err != nil {
			return false
		}
		held := 0
		for _, fh := range st.Hosts {
			for _, a := range fh.Allocations {
				if strings.HasPrefix(a.ServiceName, "steady-") {
					held++
				}
			}
		}
		return held == 3
	})
	t.Logf("fleet status answered %s after the kill", time.Since(killed))
	ans, err := r.Who(ctx, "alpha", steady["alpha"], ledger.UntilID(time.Now()))
	is.NoErr(err)                                               // who answers through the hubs left
	is.True(ans.Holder != nil)                                  // the steady allocation
	is.Equal(ans.Holder.Allocation.ServiceName, "steady-alpha") // held it
	time.Sleep(500 * time.Millisecond)
	ld.end()
	is.Equal(ld.failures.Load(), int64(0)) // local allocation never failed
	for _, hs := range hosts {
		hs.waitCaughtUp(t, 30*time.Second)
		t.Logf("%s caught up %s after the kill", hs.name, time.Since(killed))
		ids := logIDs(t, hs.log)
		got := hostEvents(t, "nats://"+clients[1]+",nats://"+clients[2], hs.name)
		is.Equal(len(got), len(ids)) // every event once
		is.Equal(got, ids)           // in log order
	}
}
