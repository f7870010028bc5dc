package crashtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/portledger/portledger/internal/testbin"
	"github.com/portledger/portledger/ledger"
	"github.com/portledger/portledger/projection"
)

// portRange keeps these tests' ports away from other packages' tests.
const portRange = "29000-29999"

// readyTimeout bounds how long the clients wait for answers from a running
// daemon: a slow machine makes a test slow, never wrong.
const readyTimeout = 30 * time.Second

// bins builds the real binary once for all the tests.
var bins testbin.Binaries

// ledgerBin is the real binary, built by TestMain before any test runs.
var ledgerBin string

func TestMain(m *testing.M) {
	var err error
	if ledgerBin, err = bins.Build(testbin.LedgerPkg); err != nil {
		fmt.Fprintln(os.Stderr, err)
		_ = bins.Remove()
		os.Exit(1)
	}
	code := m.Run()
	_ = bins.Remove()
	os.Exit(code)
}

// rounds returns how many kill/restart rounds a crash scenario runs:
// $CRASHTEST_ROUNDS, else 3 (2 with -short).
func rounds(t *testing.T) int {
	t.Helper()
	if s := os.Getenv("CRASHTEST_ROUNDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("CRASHTEST_ROUNDS=%q: want a positive number", s)
		}
		return n
	}
	if testing.Short() {
		return 2
	}
	return 3
}

// ledgerEnv is the environment of every ledger process of a test: the data
// directory and range are set, nothing is inherited from the developer's.
func ledgerEnv(data string) []string {
	return testbin.Env(data, portRange)
}

// startDaemon starts `ledger serve` on data with the watchdog kept quiet, so
// that every event of the log comes from a test client, and waits until it
// answers on addr, or on its socket when addr is "".
func startDaemon(t *testing.T, data, addr string) *testbin.Daemon {
	t.Helper()
	return bins.Serve(t, data, portRange, addr, "--interval", "1h", "--lease", "1h", "--start-grace", "1h")
}

// freeAddr returns a loopback address that nothing listens on right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	return testbin.FreeAddr(t)
}

// intent is what the clients of a test asked for and what they were told.
type intent struct {
	mu sync.Mutex
	// allocSent counts allocate requests sent, by service name.
	allocSent map[string]int
	// releaseSent counts release requests sent, by released_by.
	releaseSent map[string]int
	// allocAcked are the allocations answered with success.
	allocAcked []ledger.Allocation
	// releaseAcked are the released events answered with success, with
	// the allocation each was meant to end (zero: whichever held the port).
	releaseAcked []ackedRelease
	// settled are allocations whose holder saw them end: a release was
	// answered, or a retried release was told the allocation is gone.
	settled map[ulid.ULID]bool
	// owns says whether a release by releasedBy may end an allocation of
	// service; nil: only a service releases its own ports.
	owns func(releasedBy, service string) bool
}

type ackedRelease struct {
	event ledger.Event
	of    ulid.ULID
}

func newIntent() *intent {
	return &intent{allocSent: map[string]int{}, releaseSent: map[string]int{}, settled: map[ulid.ULID]bool{}}
}

func (in *intent) sentAllocate(service string) {
	in.mu.Lock()
	in.allocSent[service]++
	in.mu.Unlock()
}

func (in *intent) sentRelease(by string) {
	in.mu.Lock()
	in.releaseSent[by]++
	in.mu.Unlock()
}

func (in *intent) allocated(a ledger.Allocation) {
	in.mu.Lock()
	in.allocAcked = append(in.allocAcked, a)
	in.mu.Unlock()
}

func (in *intent) released(e ledger.Event, of ulid.ULID) {
	in.mu.Lock()
	in.releaseAcked = append(in.releaseAcked, ackedRelease{e, of})
	if !of.IsZero() {
		in.settled[of] = true
	}
	in.mu.Unlock()
}

func (in *intent) gone(of ulid.ULID) {
	in.mu.Lock()
	in.settled[of] = true
	in.mu.Unlock()
}

// logFacts is what checkLog found.
type logFacts struct {
	events    []ledger.Event
	final     *projection.Registry
	allocated int
	released  int
	byType    map[ledger.EventType]int
}

// checkLog opens the log of data after every process has let go of it and
// checks the promises against what the clients asked for and were told:
// the file passes bbolt's check; every acknowledged allocation and release
// is there, as acknowledged; every allocation and release in the log was
// asked for, and no more often than asked; no allocation lands on a held
// port and every release ends a live allocation of an owner's service; no
// settled allocation is still live at the end.
func checkLog(t *testing.T, data string, in *intent) logFacts {
	t.Helper()
	log, err := ledger.Open(ledger.Layout{Dir: data}.DB(), ledger.Options{Timeout: 10 * time.Second})
	if err != nil {
		t.Fatalf("open log: %v", err)
	}
	defer log.Close()
	if err := log.Check(); err != nil {
		t.Fatalf("bbolt check: %v", err)
	}
	f := logFacts{byType: map[ledger.EventType]int{}}
	byID := map[ulid.ULID]ledger.Event{}
	err = log.Scan(ulid.ULID{}, ulid.ULID{}, func(e ledger.Event) error {
		f.events = append(f.events, e)
		byID[e.ID] = e
		f.byType[e.Type]++
		return nil
	})
	if err != nil {
		t.Fatalf("scan log: %v", err)
	}
	n, err := log.Count()
	if err != nil || n != uint64(len(f.events)) {
		t.Errorf("the log counts %d events (%v) but holds %d", n, err, len(f.events))
	}

	in.mu.Lock()
	defer in.mu.Unlock()
	for _, a := range in.allocAcked {
		e, ok := byID[a.EventID]
		switch {
		case !ok:
			t.Errorf("LOST: allocation of port %d to %s (event %s) was acknowledged but is not in the log", a.Port, a.ServiceName, a.EventID)
		case e.Type != ledger.EventAllocated || e.Port != a.Port || e.Allocated.ServiceName != a.ServiceName:
			t.Errorf("acknowledged allocation %s of port %d to %s is %s of port %d in the log", a.EventID, a.Port, a.ServiceName, e.Type, e.Port)
		}
	}
	releaseOf := map[ulid.ULID]ulid.ULID{}
	for _, r := range in.releaseAcked {
		e, ok := byID[r.event.ID]
		switch {
		case !ok:
			t.Errorf("LOST: release of port %d (event %s) was acknowledged but is not in the log", r.event.Port, r.event.ID)
		case e.Type != ledger.EventReleased || e.Port != r.event.Port:
			t.Errorf("acknowledged release %s of port %d is %s of port %d in the log", r.event.ID, r.event.Port, e.Type, e.Port)
		}
		releaseOf[r.event.ID] = r.of
	}

	owns := in.owns
	if owns == nil {
		owns = func(by, service string) bool { return by == service }
	}
	allocs, releases := map[string]int{}, map[string]int{}
	reg := projection.NewRegistry()
	for _, e := range f.events {
		switch e.Type {
		case ledger.EventAllocated:
			f.allocated++
			svc := e.Allocated.ServiceName
			allocs[svc]++
			if sent := in.allocSent[svc]; allocs[svc] > sent {
				t.Errorf("UNASKED: allocation %s of port %d to %s: %d allocations in the log, %d asked for", e.ID, e.Port, svc, allocs[svc], sent)
			}
			if h := reg.Allocs[e.Port]; h != nil {
				t.Errorf("DOUBLE HOLDER: allocation %s hands port %d to %s while %s holds it (since %s)", e.ID, e.Port, svc, h.ServiceName, h.EventID)
			}
			if !reg.Range.Contains(e.Port) {
				t.Errorf("allocation %s of port %d is outside the range %s", e.ID, e.Port, reg.Range)
			}
		case ledger.EventReleased:
			f.released++
			by := e.Released.ReleasedBy
			releases[by]++
			if sent := in.releaseSent[by]; releases[by] > sent {
				t.Errorf("UNASKED: release %s of port %d by %q: %d releases in the log, %d asked for", e.ID, e.Port, by, releases[by], sent)
			}
			h := reg.Allocs[e.Port]
			switch {
			case h == nil:
				t.Errorf("release %s of port %d that nobody holds", e.ID, e.Port)
			case !owns(by, h.ServiceName):
				t.Errorf("release %s of port %d by %q ends an allocation of %s", e.ID, e.Port, by, h.ServiceName)
			case !releaseOf[e.ID].IsZero() && releaseOf[e.ID] != h.EventID:
				t.Errorf("release %s of port %d was meant for allocation %s but ends %s", e.ID, e.Port, releaseOf[e.ID], h.EventID)
			}
		}
		reg.Apply(e)
	}
	for port, a := range reg.Allocs {
		if in.settled[a.EventID] {
			t.Errorf("allocation %s of port %d to %s is live at the end, but its holder was told it ended", a.EventID, port, a.ServiceName)
		}
	}
	f.final = reg
	return f
}

// replayVerify runs `ledger replay --verify` on a data directory that no
// daemon holds: the projection files must equal what the log gives.
func replayVerify(t *testing.T, data string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, ledgerBin, "replay", "--verify")
	cmd.Env = ledgerEnv(data)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil || !strings.Contains(out.String(), "match") {
		t.Errorf("ledger replay --verify: %v: the projection files differ from the log\n%s%s", err, out.String(), errb.String())
	}
}

// checkFile opens the log while no daemon runs and runs bbolt's check: a
// file left by a killed daemon must be whole.
func checkFile(t *testing.T, data string) {
	t.Helper()
	log, err := ledger.Open(ledger.Layout{Dir: data}.DB(), ledger.Options{Timeout: 10 * time.Second})
	if err != nil {
		t.Fatalf("open log after the daemon stopped: %v", err)
	}
	defer log.Close()
	if err := log.Check(); err != nil {
		t.Fatalf("bbolt check after the daemon stopped: %v", err)
	}
}

// isDial reports whether err is a failure to connect: nothing was sent.
func isDial(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}
