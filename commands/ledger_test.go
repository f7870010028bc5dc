package commands_test

import (
	"context"
	"errors"
	"fmt"
	"github.com/portledger/portledger/internal/ledgertest"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/matryer/is"
	"github.com/oklog/ulid/v2"
	"github.com/portledger/portledger/commands"
	"github.com/portledger/portledger/ledger"
	"github.com/portledger/portledger/projection"
)

// testRange is far from the default range so tests do not meet the
// developer's own services; other packages' tests use other ranges.
var testRange = ledger.Range{Lo: 32000, Hi: 32100}

// MustOpen opens a log in a temp dir and a Ledger on it, set to testRange.
func MustOpen(tb testing.TB, cfg commands.Config) *commands.Ledger {
	tb.Helper()
	l, _ := openLedger(tb, ledger.Options{}, cfg, testRange)
	return l
}

// openLedger opens a log with opts in a temp dir and a Ledger with cfg on
// it, set to r. When tb ends it closes the Ledger, checks the file and
// closes it.
func openLedger(tb testing.TB, opts ledger.Options, cfg commands.Config, r ledger.Range) (*commands.Ledger, *ledger.Log) {
	tb.Helper()
	log := ledgertest.MustOpenLog(tb, opts) // checked and closed after the Ledger
	cfg.Log = log
	l, err := commands.New(cfg)
	if err != nil {
		tb.Fatalf("new ledger: %v", err)
	}
	tb.Cleanup(func() { l.Close() })
	if err := l.SetRange(context.Background(), r); err != nil {
		tb.Fatalf("set range: %v", err)
	}
	return l, log
}

func TestAllocateLowestFreeAndSticky(t *testing.T) {
	is := is.New(t)
	ctx := context.Background()
	l := MustOpen(t, commands.Config{})

	a, err := l.Allocate(ctx, ledger.AllocateRequest{ServiceName: "grace_backend", StartedBy: "serve.py", Purpose: "Main Grace API server"})
	is.NoErr(err)                                   // allocate grace_backend
	is.Equal(a.Port, testRange.Lo)                  // lowest port first
	is.Equal(a.HealthStatus, ledger.HealthStarting) // a new allocation is starting
	is.True(a.EventID.Time() > 0)                   // carries its event ID
	b, err := l.Allocate(ctx, ledger.AllocateRequest{ServiceName: "learning"})
	is.NoErr(err)                    // allocate learning
	is.Equal(b.Port, testRange.Lo+1) // next lowest

	_, err = l.Release(ctx, ledger.ReleaseRequest{Port: b.Port})
	is.NoErr(err) // release learning
	_, err = l.Release(ctx, ledger.ReleaseRequest{Port: a.Port})
	is.NoErr(err) // release grace_backend

	// learning comes back first but gets its own port back, not the lowest.
	b2, err := l.Allocate(ctx, ledger.AllocateRequest{ServiceName: "learning"})
	is.NoErr(err)
	is.Equal(b2.Port, b.Port) // sticky: learning gets its previous port
	a2, err := l.Allocate(ctx, ledger.AllocateRequest{ServiceName: "grace_backend"})
	is.NoErr(err)
	is.Equal(a2.Port, a.Port) // sticky: grace_backend gets its previous port
}

func TestAllocateSkipsPortsInUse(t *testing.T) {
	is := is.New(t)
	ctx := context.Background()
	l := MustOpen(t, commands.Config{})
	// A real listener on the lowest port of the range.
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", testRange.Lo))
	is.NoErr(err) // listen on the first port
	defer ln.Close()

	a, err := l.Allocate(ctx, ledger.AllocateRequest{ServiceName: "api"})
	is.NoErr(err)
	is.Equal(a.Port, testRange.Lo+1) // the port in use is skipped

	_, err = l.Allocate(ctx, ledger.AllocateRequest{ServiceName: "api2", Port: testRange.Lo})
	is.Equal(ledger.ErrorCode(err), ledger.ECONFLICT) // a preferred port in use is refused
	_, err = l.Allocate(ctx, ledger.AllocateRequest{ServiceName: "api2", Port: a.Port})
	is.Equal(ledger.ErrorCode(err), ledger.ECONFLICT)     // a preferred port held is refused
	is.True(strings.Contains(err.Error(), "held by api")) // and names the holder
}

func TestAllocateConcurrentExhausts(t *testing.T) {
	is := is.New(t)
	ctx := context.Background()
	l := MustOpen(t, commands.Config{PortFree: func(int) error { return nil }})
	// The OS probe is replaced here: 200 goroutines race for 101 ports, and
	// a port taken meanwhile by an unrelated program on this machine would
	// make the count depend on the machine rather than on the writer.

	var mu sync.Mutex
	ports := map[int]string{}
	var exhausted []error
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			svc := fmt.Sprintf("svc-%03d", i)
			a, err := l.Allocate(ctx, ledger.AllocateRequest{ServiceName: svc})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				exhausted = append(exhausted, err)
				return
			}
			if prev, dup := ports[a.Port]; dup {
				t.Errorf("port %d handed to %s and %s", a.Port, prev, svc)
			}
			ports[a.Port] = svc
		}()
	}
	wg.Wait()
	is.Equal(len(ports), testRange.Size())         // every port handed out once
	is.Equal(len(exhausted), 200-testRange.Size()) // the rest refused
	for _, err := range exhausted {
		is.Equal(ledger.ErrorCode(err), ledger.EEXHAUSTED) // refused as exhausted
	}
	is.True(strings.Contains(exhausted[0].Error(), "svc-")) // the diagnosis names the holders

	count, err := l.Log().Count()
	is.NoErr(err)
	is.Equal(count, uint64(1+testRange.Size())) // range change + one event per success; nothing for refusals
	reg, err := projection.Fold(l.Log(), [16]byte{})
	is.NoErr(err)
	is.Equal(len(reg.Allocs), testRange.Size()) // the log agrees with the answers
}

func TestBadInputChangesNothing(t *testing.T) {
	ctx := context.Background()
	l := MustOpen(t, commands.Config{})
	held, err := l.Allocate(ctx, ledger.AllocateRequest{ServiceName: "held"})
	if err != nil {
		t.Fatal(err)
	}
	free := held.Port + 1
	self := os.Getpid()
	tests := []struct {
		name string
		do   func() error
		code string
	}{
		{"empty name", func() error { _, err := l.Allocate(ctx, ledger.AllocateRequest{}); return err }, ledger.EINVALID},
		{"long name", func() error {
			_, err := l.Allocate(ctx, ledger.AllocateRequest{ServiceName: strings.Repeat("a", 10000)})
			return err
		}, ledger.EINVALID},
		{"name with newline", func() error {
			_, err := l.Allocate(ctx, ledger.AllocateRequest{ServiceName: "a\nb"})
			return err
		}, ledger.EINVALID},
		{"purpose with control chars", func() error {
			_, err := l.Allocate(ctx, ledger.AllocateRequest{ServiceName: "a", Purpose: "x\x1b[31m"})
			return err
		}, ledger.EINVALID},
		{"right-to-left override in started_by", func() error {
			_, err := l.Allocate(ctx, ledger.AllocateRequest{ServiceName: "a", StartedBy: "evil\u202eexe.txt"})
			return err
		}, ledger.EINVALID},
		{"line separator in a purpose", func() error {
			_, err := l.Allocate(ctx, ledger.AllocateRequest{ServiceName: "a", Purpose: "ok\u2028FAKE LINE"})
			return err
		}, ledger.EINVALID},
		{"paragraph separator in a release reason", func() error {
			_, err := l.Release(ctx, ledger.ReleaseRequest{Port: held.Port, Reason: "done\u2029"})
			return err
		}, ledger.EINVALID},
		{"zero width space in a release reason", func() error {
			_, err := l.Release(ctx, ledger.ReleaseRequest{Port: held.Port, Reason: "done\u200b"})
			return err
		}, ledger.EINVALID},
		{"port 0 via pid", func() error { _, err := l.RegisterPID(ctx, 0, self); return err }, ledger.EINVALID},
		{"port 70000", func() error {
			_, err := l.Allocate(ctx, ledger.AllocateRequest{ServiceName: "a", Port: 70000})
			return err
		}, ledger.EINVALID},
		{"port outside range", func() error {
			_, err := l.Allocate(ctx, ledger.AllocateRequest{ServiceName: "a", Port: 8000})
			return err
		}, ledger.EINVALID},
		{"pid 0", func() error { _, err := l.RegisterPID(ctx, held.Port, 0); return err }, ledger.EINVALID},
		{"pid 1", func() error { _, err := l.RegisterPID(ctx, held.Port, 1); return err }, ledger.EINVALID},
		{"pid -5", func() error { _, err := l.RegisterPID(ctx, held.Port, -5); return err }, ledger.EINVALID},
		{"pid of no process", func() error { _, err := l.RegisterPID(ctx, held.Port, 1<<22-7); return err }, ledger.EINVALID},
		{"pid on free port", func() error { _, err := l.RegisterPID(ctx, free, self); return err }, ledger.ENOTFOUND},
		{"release free port", func() error { _, err := l.Release(ctx, ledger.ReleaseRequest{Port: free}); return err }, ledger.ENOTFOUND},
		{"negative stats", func() error { return l.ReportStats(ctx, held.Port, -1, 0) }, ledger.EINVALID},
		{"remote health url", func() error {
			_, err := l.Allocate(ctx, ledger.AllocateRequest{ServiceName: "a", HealthURL: "http://10.0.0.1/health"})
			return err
		}, ledger.EINVALID},
		{"bad range", func() error { return l.SetRange(ctx, ledger.Range{Lo: 9000, Hi: 8000}) }, ledger.EINVALID},
		{"range leaving a holder out", func() error { return l.SetRange(ctx, ledger.Range{Lo: 1000, Hi: 1100}) }, ledger.EINVALID},
	}
	before, _ := l.Log().Count()
	last := l.Log().LastID()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			err := tt.do()
			is.True(err != nil)                      // refused
			is.Equal(ledger.ErrorCode(err), tt.code) // with the right code
		})
	}
	is := is.New(t)
	after, _ := l.Log().Count()
	is.Equal(after, before)          // nothing written
	is.Equal(l.Log().LastID(), last) // log unchanged
}

func TestRegisterPIDRecordsStartTime(t *testing.T) {
	is := is.New(t)
	ctx := context.Background()
	l := MustOpen(t, commands.Config{})
	a, err := l.Allocate(ctx, ledger.AllocateRequest{ServiceName: "api"})
	is.NoErr(err)
	pid := ledgertest.Sleeper(t)
	a, err = l.RegisterPID(ctx, a.Port, pid)
	is.NoErr(err)                  // register a live PID
	is.Equal(a.PID, pid)           // recorded
	is.True(a.PIDStartedAt != nil) // with the start time
	info, err := commands.LookupProcess(pid)
	is.NoErr(err)
	is.Equal(int64(*a.PIDStartedAt), info.StartedAt) // the process's real start time
}

func TestReleaseOnlyTheNamedAllocation(t *testing.T) {
	is := is.New(t)
	ctx := context.Background()
	l := MustOpen(t, commands.Config{})
	old, err := l.Allocate(ctx, ledger.AllocateRequest{ServiceName: "old"})
	is.NoErr(err)
	_, err = l.Release(ctx, ledger.ReleaseRequest{Port: old.Port})
	is.NoErr(err)
	cur, err := l.Allocate(ctx, ledger.AllocateRequest{ServiceName: "new", Port: old.Port})
	is.NoErr(err)
	_, err = l.Release(ctx, ledger.ReleaseRequest{Port: old.Port, EventID: old.EventID})
	is.Equal(ledger.ErrorCode(err), ledger.ECONFLICT) // a stale release does not free the new holder
	got, err := l.Allocation(ctx, old.Port, [16]byte{})
	is.NoErr(err)
	is.Equal(got.EventID, cur.EventID) // still held by the new allocation
}

func TestStatsCoalescedAndCarriedByRelease(t *testing.T) {
	is := is.New(t)
	ctx := context.Background()
	now := time.Date(2026, 11, 17, 14, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	l := MustOpen(t, commands.Config{Now: clock})
	a, err := l.Allocate(ctx, ledger.AllocateRequest{ServiceName: "api"})
	is.NoErr(err)
	for i := range 10 {
		is.NoErr(l.ReportStats(ctx, a.Port, int64(10*(i+1)), int64(i))) // report
	}
	ev, err := l.History(ctx, ledger.HistoryQuery{Port: a.Port})
	is.NoErr(err)
	stats := 0
	for _, e := range ev {
		if e.Type == ledger.EventStatsReported {
			stats++
		}
	}
	is.Equal(stats, 1) // ten reports within a minute make one event
	rel, err := l.Release(ctx, ledger.ReleaseRequest{Port: a.Port, Reason: "done"})
	is.NoErr(err)
	is.Equal(rel.Released.RequestCount, int64(100)) // the release carries the latest totals
	is.Equal(rel.Released.ErrorCount, int64(9))
}

func TestSnapshotsGiveTheSameState(t *testing.T) {
	is := is.New(t)
	ctx := context.Background()
	l := MustOpen(t, commands.Config{SnapshotEvery: 7, PortFree: func(int) error { return nil }})
	var points [][16]byte
	for i := range 40 {
		a, err := l.Allocate(ctx, ledger.AllocateRequest{ServiceName: fmt.Sprintf("s%d", i%5)})
		is.NoErr(err)
		points = append(points, a.EventID)
		if i%3 == 0 {
			rel, err := l.Release(ctx, ledger.ReleaseRequest{Port: a.Port})
			is.NoErr(err)
			points = append(points, rel.ID)
		}
	}
	for _, p := range points {
		withSnap, err := projection.StateAt(l.Log(), p)
		is.NoErr(err)
		plain, err := projection.Fold(l.Log(), p)
		is.NoErr(err)
		is.Equal(withSnap.Status(), plain.Status()) // snapshot + tail equals a full fold
	}
	_, _, ok, err := l.Log().Snapshot([16]byte{})
	is.NoErr(err)
	is.True(ok) // snapshots were written
}

func TestHistoryByServiceAndPort(t *testing.T) {
	is := is.New(t)
	ctx := context.Background()
	l := MustOpen(t, commands.Config{})
	a, err := l.Allocate(ctx, ledger.AllocateRequest{ServiceName: "learning"})
	is.NoErr(err)
	b, err := l.Allocate(ctx, ledger.AllocateRequest{ServiceName: "remote"})
	is.NoErr(err)
	_, err = l.RegisterPID(ctx, a.Port, ledgertest.Sleeper(t))
	is.NoErr(err)
	_, err = l.Release(ctx, ledger.ReleaseRequest{Port: a.Port})
	is.NoErr(err)
	_, err = l.Release(ctx, ledger.ReleaseRequest{Port: b.Port})
	is.NoErr(err)

	evs, err := l.History(ctx, ledger.HistoryQuery{Service: "learning"})
	is.NoErr(err)
	is.Equal(len(evs), 3) // allocate, pid, release of learning
	for _, e := range evs {
		is.Equal(e.Port, a.Port) // only learning's port
	}
	evs, err = l.History(ctx, ledger.HistoryQuery{Port: b.Port})
	is.NoErr(err)
	is.Equal(len(evs), 2) // allocate and release of remote's port
	is.Equal(evs[0].Type, ledger.EventAllocated)
	is.Equal(evs[1].Type, ledger.EventReleased)
	evs, err = l.History(ctx, ledger.HistoryQuery{Service: "learning", Since: evs[0].ID})
	is.NoErr(err)
	is.Equal(len(evs), 2) // since remote's allocation: learning's pid and release

	_, err = l.History(ctx, ledger.HistoryQuery{Service: "bad name!"})
	is.True(errors.Is(err, err) && ledger.ErrorCode(err) == ledger.EINVALID) // a bad filter is refused
}

func TestSubscriptionDropsSlowReader(t *testing.T) {
	is := is.New(t)
	ctx := context.Background()
	l := MustOpen(t, commands.Config{PortFree: func(int) error { return nil }})
	fast, err := l.Subscribe(ctx, ledger.SubscribeRequest{Buffer: 100})
	is.NoErr(err)
	slow, err := l.Subscribe(ctx, ledger.SubscribeRequest{Buffer: 1})
	is.NoErr(err)
	defer fast.Close()
	defer slow.Close()
	for i := range 3 {
		_, err := l.Allocate(ctx, ledger.AllocateRequest{ServiceName: fmt.Sprintf("s%d", i)})
		is.NoErr(err)
	}
	for range 3 {
		e := <-fast.C()
		is.Equal(e.Type, ledger.EventAllocated) // the fast reader sees every event
	}
	n := 0
	for range slow.C() {
		n++
	}
	is.Equal(n, 1)                                    // it got what fit in its buffer, then its channel closed
	is.True(errors.Is(slow.Err(), ledger.ErrDropped)) // the slow reader is dropped, not waited for
	is.Equal(ledger.ErrorCode(slow.Err()), ledger.EUNAVAILABLE)
}

// TestSubscribeAfter checks the catch-up of a subscription with an After:
// every event after it from the log, then the live ones, each once, in
// order; and the ends of a subscription: Close, its context, a bad buffer.
func TestSubscribeAfter(t *testing.T) {
	is := is.New(t)
	ctx := context.Background()
	l := MustOpen(t, commands.Config{PortFree: func(int) error { return nil }})
	var ids []ulid.ULID
	for i := range 5 {
		a, err := l.Allocate(ctx, ledger.AllocateRequest{ServiceName: fmt.Sprintf("s%d", i)})
		is.NoErr(err)
		ids = append(ids, a.EventID)
	}
	sub, err := l.Subscribe(ctx, ledger.SubscribeRequest{After: ids[1]})
	is.NoErr(err)
	for i := 5; i < 8; i++ {
		a, err := l.Allocate(ctx, ledger.AllocateRequest{ServiceName: fmt.Sprintf("s%d", i)})
		is.NoErr(err)
		ids = append(ids, a.EventID)
	}
	for _, want := range ids[2:] {
		select {
		case e := <-sub.C():
			is.Equal(e.ID, want) // the past after After, then the live events, in order
		case <-time.After(10 * time.Second):
			t.Fatal("no event within 10s")
		}
	}
	sub.Close()
	for e := range sub.C() {
		t.Fatalf("event %s after the last one", e.ID) // each event once
	}
	is.NoErr(sub.Err()) // ended by Close

	cctx, cancel := context.WithCancel(ctx)
	live, err := l.Subscribe(cctx, ledger.SubscribeRequest{})
	is.NoErr(err)
	cancel()
	select {
	case _, open := <-live.C():
		is.True(!open) // the end of the context ends the subscription
	case <-time.After(10 * time.Second):
		t.Fatal("the subscription outlived its context")
	}
	is.NoErr(live.Err()) // ended by its context

	_, err = l.Subscribe(ctx, ledger.SubscribeRequest{Buffer: -1})
	is.Equal(ledger.ErrorCode(err), ledger.EINVALID) // a negative buffer is refused
}

func TestProbePortFreeAfterTimeWait(t *testing.T) {
	is := is.New(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	is.NoErr(err) // listen
	port := ln.Addr().(*net.TCPAddr).Port
	client, err := net.Dial("tcp", ln.Addr().String())
	is.NoErr(err) // connect
	server, err := ln.Accept()
	is.NoErr(err) // accept
	is.NoErr(ln.Close())
	is.NoErr(server.Close()) // the side that closes first keeps the port in TIME_WAIT
	_, _ = client.Read(make([]byte, 1))
	is.NoErr(client.Close())
	// A restarted service can listen there again, so the port is free.
	is.NoErr(commands.ProbePort(port)) // a port in TIME_WAIT only is free
}

func TestProbePortSeesEveryAddress(t *testing.T) {
	for _, host := range []string{"127.0.0.1", "0.0.0.0", "[::1]", "[::]"} {
		t.Run(host, func(t *testing.T) {
			is := is.New(t)
			ln, err := net.Listen("tcp", host+":0")
			if err != nil {
				t.Skipf("no %s on this machine: %v", host, err)
			}
			defer ln.Close()
			port := ln.Addr().(*net.TCPAddr).Port
			is.True(commands.ProbePort(port) != nil) // a port held on this address is not free
			ln.Close()
			is.NoErr(commands.ProbePort(port)) // and free once let go
		})
	}
}
