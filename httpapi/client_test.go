package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"github.com/portledger/portledger/internal/ledgertest"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/matryer/is"
	"github.com/oklog/ulid/v2"
	"github.com/portledger/portledger/ledger"
)

// sameJSON reports whether a and b encode to the same JSON: what a caller
// of the Client sees is what a local caller sees.
func sameJSON(t *testing.T, a, b any) bool {
	t.Helper()
	ja, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	jb, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	if string(ja) != string(jb) {
		t.Logf("remote: %s\nlocal:  %s", ja, jb)
		return false
	}
	return true
}

// sameError reports whether two errors carry the same code and message.
func sameError(t *testing.T, remote, local error) bool {
	t.Helper()
	if remote == nil || local == nil {
		t.Logf("remote: %v, local: %v", remote, local)
		return false
	}
	var re *ledger.Error
	if !errors.As(remote, &re) {
		t.Logf("remote error is %T, not *ledger.Error", remote)
		return false
	}
	if ledger.ErrorCode(remote) != ledger.ErrorCode(local) || ledger.ErrorMessage(remote) != ledger.ErrorMessage(local) {
		t.Logf("remote: %s %q, local: %s %q", ledger.ErrorCode(remote), ledger.ErrorMessage(remote),
			ledger.ErrorCode(local), ledger.ErrorMessage(local))
		return false
	}
	return true
}

func TestClientRoundTrip(t *testing.T) {
	is := is.New(t)
	e := newEnv(t)
	ctx := context.Background()
	c := e.client()
	var svc ledger.Service = e.svc // the local side to compare with

	is.NoErr(c.Ping(ctx)) // ping

	a, err := c.Allocate(ctx, ledger.AllocateRequest{ServiceName: "api", StartedBy: "serve.py", Purpose: "Main API server",
		HealthURL: "http://127.0.0.1:27000/health"})
	is.NoErr(err) // allocate
	local, err := svc.Allocation(ctx, a.Port, ulid.ULID{})
	is.NoErr(err)
	is.True(sameJSON(t, a, local)) // the allocation as stored
	is.Equal(a.HealthURL, "http://127.0.0.1:27000/health")

	got, err := c.Allocation(ctx, a.Port, ulid.ULID{})
	is.NoErr(err)                    // allocation
	is.True(sameJSON(t, got, local)) // same as local

	pid := ledgertest.Sleeper(t)
	a, err = c.RegisterPID(ctx, a.Port, pid)
	is.NoErr(err)                  // register pid
	is.Equal(a.PID, pid)           // recorded
	is.True(a.PIDStartedAt != nil) // with its start time

	is.NoErr(c.ReportStats(ctx, a.Port, 10, 1)) // report stats
	// The daemon's watchdog records health and conflicts in process; the
	// client reads them back.
	is.NoErr(e.svc.RecordHealth(ctx, ledger.HealthReport{Port: a.Port, EventID: a.EventID, To: ledger.HealthHealthy,
		Reason: "listening", Alive: true, Listening: true, Endpoint: "ok"})) // record health
	got, err = c.Allocation(ctx, a.Port, ulid.ULID{})
	is.NoErr(err)
	is.Equal(got.HealthStatus, ledger.HealthHealthy) // health recorded
	is.Equal(got.RequestCount, int64(10))            // stats recorded

	free := a.Port + 50
	is.NoErr(e.svc.RecordConflict(ctx, free, 4242, "nc -l 27050")) // record conflict

	other, err := c.Allocate(ctx, ledger.AllocateRequest{ServiceName: "worker"})
	is.NoErr(err)

	list, err := c.Allocations(ctx, ledger.AllocationQuery{})
	is.NoErr(err)          // allocations
	is.Equal(len(list), 2) // both
	localList, err := svc.Allocations(ctx, ledger.AllocationQuery{})
	is.NoErr(err)
	is.True(sameJSON(t, list, localList)) // same as local
	list, err = c.Allocations(ctx, ledger.AllocationQuery{Service: "worker"})
	is.NoErr(err)                            // allocations of one service
	is.Equal(len(list), 1)                   // one
	is.Equal(list[0].EventID, other.EventID) // the worker's
	list, err = c.Allocations(ctx, ledger.AllocationQuery{At: a.EventID})
	is.NoErr(err)          // allocations at a point
	is.Equal(len(list), 1) // only the first then

	st, err := c.Status(ctx, ulid.ULID{})
	is.NoErr(err) // status
	localSt, err := svc.Status(ctx, ulid.ULID{})
	is.NoErr(err)
	is.True(sameJSON(t, st.PortManager, localSt.PortManager)) // same registry as local
	is.Equal(len(st.PortManager.Conflicts), 1)                // with the conflict
	is.Equal(st.PortManager.Conflicts[0].Command, "nc -l 27050")
	is.Equal(st.Watchdog, e.wd.status) // and the daemon's watchdog

	st, err = c.Status(ctx, other.EventID)
	is.NoErr(err) // status at a point
	localSt, err = svc.Status(ctx, other.EventID)
	is.NoErr(err)
	is.True(sameJSON(t, st, localSt)) // the past, as local

	hq := ledger.HistoryQuery{Since: a.EventID, Until: other.EventID}
	evs, err := c.History(ctx, hq)
	is.NoErr(err) // history
	localEvs, err := svc.History(ctx, hq)
	is.NoErr(err)
	is.True(len(evs) >= 5)              // allocated, pid, stats?, health, conflict, allocated
	is.True(sameJSON(t, evs, localEvs)) // same as local
	evs, err = c.History(ctx, ledger.HistoryQuery{Port: other.Port, Service: "worker", Limit: 1})
	is.NoErr(err)
	is.Equal(len(evs), 1)              // filtered
	is.Equal(evs[0].ID, other.EventID) // the worker's allocation

	rel, err := c.Release(ctx, ledger.ReleaseRequest{Port: other.Port, Reason: "done", ReleasedBy: "test", EventID: other.EventID})
	is.NoErr(err)                            // release
	is.Equal(rel.Type, ledger.EventReleased) // the released event
	is.Equal(rel.Released.Reason, "done")    // with its reason
	is.Equal(rel.Released.ReleasedBy, "test")
	is.Equal(rel.ID, e.log.LastID()) // the event appended

	is.NoErr(c.SetRange(ctx, ledger.Range{Lo: 27000, Hi: 27200})) // set range
	st, err = c.Status(ctx, ulid.ULID{})
	is.NoErr(err)
	is.Equal(st.PortManager.PortRange, "27000-27200") // range changed

	sw, err := c.HealthCheck(ctx)
	is.NoErr(err)                         // health-check
	is.True(sameJSON(t, sw, e.wd.result)) // the sweep's result
	ws, err := c.WatchdogStatus(ctx)
	is.NoErr(err)             // watchdog status
	is.Equal(ws, e.wd.status) // the watchdog's counters
}

func TestClientErrorsMatchLocal(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	c := e.client()
	held := e.allocate(t, "api")
	free := held.Port + 50
	stranger := ulid.Make() // an allocation ID that never held anything

	tests := []struct {
		name string
		call func(s ledger.Service) error
		code string
	}{
		{"preferred port held", func(s ledger.Service) error {
			_, err := s.Allocate(ctx, ledger.AllocateRequest{ServiceName: "x", Port: held.Port})
			return err
		}, ledger.ECONFLICT},
		{"bad service name", func(s ledger.Service) error {
			_, err := s.Allocate(ctx, ledger.AllocateRequest{ServiceName: "a b"})
			return err
		}, ledger.EINVALID},
		{"remote health URL", func(s ledger.Service) error {
			_, err := s.Allocate(ctx, ledger.AllocateRequest{ServiceName: "x", HealthURL: "http://example.com/health"})
			return err
		}, ledger.EINVALID},
		{"allocation of a free port", func(s ledger.Service) error {
			_, err := s.Allocation(ctx, free, ulid.ULID{})
			return err
		}, ledger.ENOTFOUND},
		{"allocation of port 0", func(s ledger.Service) error {
			_, err := s.Allocation(ctx, 0, ulid.ULID{})
			return err
		}, ledger.EINVALID},
		{"release of a free port", func(s ledger.Service) error {
			_, err := s.Release(ctx, ledger.ReleaseRequest{Port: free})
			return err
		}, ledger.ENOTFOUND},
		{"release of another allocation", func(s ledger.Service) error {
			_, err := s.Release(ctx, ledger.ReleaseRequest{Port: held.Port, EventID: stranger})
			return err
		}, ledger.ECONFLICT},
		{"pid to a free port", func(s ledger.Service) error {
			_, err := s.RegisterPID(ctx, free, os.Getpid())
			return err
		}, ledger.ENOTFOUND},
		{"pid of no process", func(s ledger.Service) error {
			_, err := s.RegisterPID(ctx, held.Port, 1<<22+12345)
			return err
		}, ledger.EINVALID},
		{"stats to a free port", func(s ledger.Service) error {
			return s.ReportStats(ctx, free, 1, 0)
		}, ledger.ENOTFOUND},
		{"negative stats", func(s ledger.Service) error {
			return s.ReportStats(ctx, held.Port, -1, 0)
		}, ledger.EINVALID},
		{"range leaving an allocation out", func(s ledger.Service) error {
			return s.SetRange(ctx, ledger.Range{Lo: 28000, Hi: 28100})
		}, ledger.EINVALID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			before := e.state(t)
			remote := tt.call(c)
			local := tt.call(e.svc)
			is.Equal(ledger.ErrorCode(remote), tt.code) // the expected code
			is.True(sameError(t, remote, local))        // indistinguishable from local
			is.Equal(e.state(t), before)                // nothing written
		})
	}
}

func TestClientExhausted(t *testing.T) {
	is := is.New(t)
	e := newEnv(t)
	ctx := context.Background()
	c := e.client()
	is.NoErr(c.SetRange(ctx, ledger.Range{Lo: 27050, Hi: 27050})) // a range of one port
	_, err := c.Allocate(ctx, ledger.AllocateRequest{ServiceName: "first"})
	is.NoErr(err) // takes the only port

	before := e.state(t)
	_, err = c.Allocate(ctx, ledger.AllocateRequest{ServiceName: "second"})
	is.Equal(ledger.ErrorCode(err), ledger.EEXHAUSTED) // the range is full
	_, local := e.svc.Allocate(ctx, ledger.AllocateRequest{ServiceName: "second"})
	is.True(sameError(t, err, local)) // the same diagnosis as local
	is.Equal(e.state(t), before)      // nothing written

	status, m := e.call(t, "POST", "/api/ports/allocations", `{"service_name":"third"}`, "")
	checkError(t, status, m, http.StatusServiceUnavailable, ledger.EEXHAUSTED) // exhausted is a 503
}

func TestPingNobody(t *testing.T) {
	is := is.New(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	is.NoErr(err)
	addr := l.Addr().String()
	is.NoErr(l.Close())
	err = NewClient("http://"+addr, "").Ping(context.Background())
	is.True(err != nil) // nobody answers on a closed port
	err = NewSocketClient(filepath.Join(t.TempDir(), "none.sock"), "").Ping(context.Background())
	is.True(err != nil) // nor on a missing socket
}

func TestSocketClient(t *testing.T) {
	is := is.New(t)
	e := newEnv(t)
	sock := filepath.Join(t.TempDir(), "ledger.sock")
	l, err := net.Listen("unix", sock)
	is.NoErr(err) // listen on a unix socket
	srv := NewHTTPServer(NewServer(Config{Service: e.svc, Events: e.svc, Token: testToken}))
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })

	ctx := context.Background()
	c := NewSocketClient(sock, "")
	is.NoErr(c.Ping(ctx)) // ping over the socket
	a, err := c.Allocate(ctx, ledger.AllocateRequest{ServiceName: "sock"})
	is.NoErr(err) // the owner allocates over the socket without a token
	got, err := e.svc.Allocation(ctx, a.Port, ulid.ULID{})
	is.NoErr(err)                    // the ledger holds it
	is.Equal(got.EventID, a.EventID) // the same allocation
	evs, err := e.svc.History(ctx, ledger.HistoryQuery{Port: a.Port})
	is.NoErr(err)
	is.Equal(*evs[len(evs)-1].Actor, ledger.Actor{Via: ledger.ViaSocket, UID: os.Getuid(), PID: os.Getpid()}) // the kernel's word on the caller is recorded

	// An open event stream must not hold Shutdown: the server cancels it.
	streamErr := make(chan error, 1)
	streaming := make(chan struct{})
	first := e.allocate(t, "before")
	go func() {
		streamErr <- c.Events(ctx, a.EventID, func(ev ledger.Event) error {
			if ev.ID == first.EventID {
				close(streaming)
			}
			return nil
		})
	}()
	<-streaming
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	is.NoErr(srv.Shutdown(sctx))                          // shutdown does not wait for the stream's deadline
	is.Equal(ledger.ErrorCode(<-streamErr), EUNAVAILABLE) // the stream ended
	is.True(errors.Is(<-served, http.ErrServerClosed))    // and the server stopped
}
