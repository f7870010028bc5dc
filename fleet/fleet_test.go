package fleet_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/matryer/is"
	"github.com/oklog/ulid/v2"
	"github.com/portledger/portledger/fleet"
	"github.com/portledger/portledger/fleet/hub"
	"github.com/portledger/portledger/ledger"
)

func TestValidateHost(t *testing.T) {
	for _, tc := range []struct {
		name, host, want string
	}{
		{"plain", "ci-runner_7", ""},
		{"empty", "", "empty"},
		{"dot separates subject tokens", "ci.example.com", "separators or wildcards"},
		{"star is a wildcard", "ci*", "separators or wildcards"},
		{"greater-than is a wildcard", "ci>", "separators or wildcards"},
		{"space", "ci 7", "separators or wildcards"},
		{"too long", strings.Repeat("a", 64), "at most 63"},
		{"other punctuation", "ci/7", "letters, digits"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			err := fleet.ValidateHost(tc.host)
			if tc.want == "" {
				is.NoErr(err) // a good host name
				return
			}
			is.True(err != nil)                              // refused
			is.Equal(ledger.ErrorCode(err), ledger.EINVALID) // as bad input
			is.True(strings.Contains(err.Error(), tc.want))  // says why
		})
	}
}

// Three hosts publish to one hub: each one's allocations show in the live
// status within a second, releases remove them, and every event is on the
// stream once, in log order.
func TestThreeHostsLiveStatus(t *testing.T) {
	is := is.New(t)
	h := startHub(t, hub.Options{})
	url := h.ClientURL()
	hosts := []*host{
		startHost(t, "alpha", url, fleet.PublisherConfig{}),
		startHost(t, "beta", url, fleet.PublisherConfig{}),
		startHost(t, "gamma", url, fleet.PublisherConfig{}),
	}
	r, _ := reader(t, url)
	ctx := testCtx(t)
	want := map[string]int{}
	for _, hs := range hosts {
		for i := range 3 {
			hs.allocate(t, fmt.Sprintf("svc-%s-%d", hs.name, i))
		}
		want[hs.name] = 3
	}
	// The issue asks for "within 1 s": BenchmarkCommitToVisible16 measures
	// the lag (p99 ~100-170 ms on the loaded development machine); the test
	// logs it and allows more, so that a starved CI machine does not fail it.
	start := time.Now()
	waitFor(t, 5*time.Second, "allocations of three hosts in fleet status", func() bool {
		st, err := r.Status(ctx, ulid.ULID{})
		is.NoErr(err)
		got := map[string]int{}
		for _, hs := range st.Hosts {
			if !hs.Reachable {
				return false // its first heartbeat may follow its first allocations
			}
			got[hs.Host] = len(hs.Allocations)
		}
		return fmt.Sprint(got) == fmt.Sprint(want)
	})
	t.Logf("visible after %s", time.Since(start))

	hosts[1].release(t, 8001, "done")
	waitFor(t, 5*time.Second, "release visible", func() bool {
		st, err := r.Status(ctx, ulid.ULID{})
		is.NoErr(err)
		for _, hs := range st.Hosts {
			if hs.Host == "beta" {
				return len(hs.Allocations) == 2
			}
		}
		return false
	})
	ps, err := r.Find(ctx, "svc-gamma-2")
	is.NoErr(err)
	is.Equal(len(ps), 1)                  // one placement
	is.Equal(ps[0].Host, "gamma")         // on its host
	is.Equal(ps[0].Allocation.Port, 8002) // on its port
	for _, hs := range hosts {
		hs.waitCaughtUp(t, 5*time.Second)
		is.Equal(hostEvents(t, url, hs.name), logIDs(t, hs.log)) // the stream holds the host's log, once, in order
	}
}

// fleet who at instants between events answers as each host's own who, and
// fleet status at those instants matches each host's own status, whether a
// host's snapshot is inside a tenure or not.
func TestWhoAndStatusAtMatchEachHost(t *testing.T) {
	h := startHub(t, hub.Options{})
	url := h.ClientURL()
	// Snapshots every 4 events: answers start from snapshots before,
	// inside and after tenures.
	cfg := fleet.PublisherConfig{SnapshotEvery: 4}
	hosts := []*host{startHost(t, "alpha", url, cfg), startHost(t, "beta", url, cfg), startHost(t, "gamma", url, cfg)}
	ctx := testCtx(t)
	var instants []ulid.ULID
	tick := func() {
		time.Sleep(3 * time.Millisecond)
		instants = append(instants, ledger.UntilID(time.Now()))
		time.Sleep(3 * time.Millisecond)
	}
	tick() // before any event
	for round := range 4 {
		for i, hs := range hosts {
			p := hs.allocate(t, fmt.Sprintf("svc-%d", i))
			tick()
			q := hs.allocate(t, fmt.Sprintf("other-%d-%d", i, round))
			hs.waitCaughtUp(t, 5*time.Second) // a snapshot may land here
			tick()
			if round%2 == 0 {
				hs.release(t, p, fmt.Sprintf("round %d", round))
			}
			if err := hs.svc.ReportStats(ctx, q, int64(round), 0); err != nil {
				t.Fatal(err)
			}
			tick()
		}
	}
	for _, hs := range hosts {
		hs.waitCaughtUp(t, 5*time.Second)
	}
	r, _ := reader(t, url)
	matchEachHost(t, r, hosts, instants, []int{8000, 8001, 8002, 8003, 8004, 8005, 8006})
}

// matchEachHost checks that fleet who and fleet status at each instant
// answer as each host's own who and status do.
func matchEachHost(t *testing.T, r *fleet.Reader, hosts []*host, instants []ulid.ULID, ports []int) {
	t.Helper()
	is := is.New(t)
	ctx := testCtx(t)
	for _, at := range instants {
		for _, hs := range hosts {
			for _, port := range ports {
				want, err := hs.svc.Who(ctx, port, at)
				is.NoErr(err)
				got, err := r.Who(ctx, hs.name, port, at)
				is.NoErr(err)
				wj, _ := json.Marshal(want)
				gj, _ := json.Marshal(got)
				if string(wj) != string(gj) {
					t.Fatalf("who %s:%d at %s:\n fleet %s\n local %s", hs.name, port, at, gj, wj)
				}
			}
		}
		st, err := r.Status(ctx, at)
		is.NoErr(err)
		byHost := map[string]ledger.FleetHost{}
		for _, fh := range st.Hosts {
			byHost[fh.Host] = fh
		}
		for _, hs := range hosts {
			local, err := hs.svc.Status(ctx, at)
			is.NoErr(err)
			fh := byHost[hs.name]
			if len(local.PortManager.Allocations) == 0 && len(fh.Allocations) == 0 {
				continue
			}
			wj, _ := json.Marshal(local.PortManager.Allocations)
			gj, _ := json.Marshal(fh.Allocations)
			if string(wj) != string(gj) {
				t.Fatalf("status of %s at %s:\n fleet %s\n local %s", hs.name, at, gj, wj)
			}
			is.Equal(fh.AsOf, local.PortManager.AsOf) // the same last event
		}
	}
}

// A backlog published late, after the moments it covers, is placed by its
// events' own IDs: fleet who and status at moments inside it answer as the
// host does, though the stream stored every event of it (and its snapshots)
// after those moments. The reader allows no clock skew here, so that the
// lower bound it takes by the stream's time is a snapshot before the
// backlog, and the search must find the better ones inside it.
func TestLateBacklogPlacedByEventIDs(t *testing.T) {
	h := startHub(t, hub.Options{})
	url := h.ClientURL()
	cfg := fleet.PublisherConfig{SnapshotEvery: 3}
	live := startHost(t, "live", url, cfg)
	late := startHost(t, "late", url, cfg)
	var instants []ulid.ULID
	tick := func() {
		time.Sleep(2 * time.Millisecond)
		instants = append(instants, ledger.UntilID(time.Now()))
		time.Sleep(2 * time.Millisecond)
	}
	work := func(round int) {
		for i, hs := range []*host{live, late} {
			p := hs.allocate(t, fmt.Sprintf("svc-%d-%d", i, round))
			tick()
			if round%2 == 1 {
				hs.release(t, p, fmt.Sprintf("round %d", round))
				tick()
			}
		}
	}
	tick()
	for round := range 3 { // both publish as they go
		work(round)
	}
	late.waitCaughtUp(t, 5*time.Second)
	late.stop()
	for round := 3; round < 9; round++ { // late's events wait in its log
		work(round)
	}
	time.Sleep(20 * time.Millisecond) // the stream stores the backlog well after it was committed
	late.start(t, url, cfg)
	late.waitCaughtUp(t, 5*time.Second)
	for round := 9; round < 11; round++ { // on time again
		work(round)
	}
	live.waitCaughtUp(t, 5*time.Second)
	late.waitCaughtUp(t, 5*time.Second)
	r, _ := reader(t, url)
	fleet.SetClockSkew(r, 0)
	matchEachHost(t, r, []*host{live, late}, instants, []int{8000, 8001, 8002, 8003, 8004, 8005, 8006, 8007})
	r5, _ := reader(t, url) // and with the default skew, where no snapshot is old enough for the lower bound
	matchEachHost(t, r5, []*host{live, late}, instants, []int{8000, 8003, 8006})
}

// A daemon that stops after the stream acknowledged events but before it
// stored its cursor sends them again on restart; the stream keeps one copy.
func TestRestartWithoutCursorNoDuplicates(t *testing.T) {
	is := is.New(t)
	h := startHub(t, hub.Options{})
	url := h.ClientURL()
	hs := startHost(t, "alpha", url, fleet.PublisherConfig{})
	for i := range 5 {
		hs.allocate(t, fmt.Sprintf("svc-%d", i))
	}
	hs.waitCaughtUp(t, 5*time.Second)
	hs.stop()
	// What a SIGKILL between publish and cursor save leaves: the events are
	// on the stream, the ledger's cursor is older.
	is.NoErr(hs.log.SetPosition(fleet.PositionName, ulid.ULID{}))
	hs.allocate(t, "after")
	hs.start(t, url, fleet.PublisherConfig{})
	hs.waitCaughtUp(t, 5*time.Second)
	is.Equal(hostEvents(t, url, "alpha"), logIDs(t, hs.log)) // every event once, in order
	cur, err := hs.log.Position(fleet.PositionName)
	is.NoErr(err)
	hs.stop()
	cur, err = hs.log.Position(fleet.PositionName)
	is.NoErr(err)
	is.Equal(cur, hs.log.LastID()) // the cursor is stored on stop
}

// A host that stops heart-beating is shown unreachable within the
// heartbeat's TTL, with its last known allocations.
func TestSilentHostUnreachable(t *testing.T) {
	is := is.New(t)
	ttl := 2 * time.Second
	h := startHub(t, hub.Options{Limits: fleet.Limits{HeartbeatTTL: ttl}})
	url := h.ClientURL()
	cfg := fleet.PublisherConfig{Heartbeat: 200 * time.Millisecond}
	a := startHost(t, "alpha", url, cfg)
	b := startHost(t, "beta", url, cfg)
	a.allocate(t, "api")
	b.allocate(t, "web")
	a.waitCaughtUp(t, 5*time.Second)
	b.waitCaughtUp(t, 5*time.Second)
	r, _ := reader(t, url)
	ctx := testCtx(t)
	reachable := func() map[string]bool {
		st, err := r.Status(ctx, ulid.ULID{})
		is.NoErr(err)
		m := map[string]bool{}
		for _, hs := range st.Hosts {
			m[hs.Host] = hs.Reachable
			is.Equal(len(hs.Allocations), 1) // last known allocations stay
		}
		return m
	}
	is.Equal(reachable(), map[string]bool{"alpha": true, "beta": true})
	a.stop()
	stopped := time.Now()
	// The server expires messages on a timer of its own: allow it one TTL
	// more than the TTL itself.
	waitFor(t, 3*ttl, "alpha unreachable", func() bool { return !reachable()["alpha"] })
	t.Logf("unreachable %s after the last heartbeat could have been sent", time.Since(stopped))
	is.True(reachable()["beta"]) // the other host still heart-beats
}

// A wrong credential gives a clear error in the publisher's status, and the
// host goes on allocating.
func TestWrongCredentials(t *testing.T) {
	is := is.New(t)
	h := startHub(t, hub.Options{User: "fleet", Password: "right"})
	for _, tc := range []struct {
		name string
		conn fleet.ConnOptions
	}{
		{"wrong password", fleet.ConnOptions{User: "fleet", Password: "wrong"}},
		{"no credentials", fleet.ConnOptions{}},
		{"token instead", fleet.ConnOptions{Token: "nope"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			hs := startHost(t, "alpha", h.ClientURL(), fleet.PublisherConfig{Conn: tc.conn})
			waitFor(t, 5*time.Second, "an error in the status", func() bool { return hs.pub.Status().LastError != "" })
			st := hs.pub.Status()
			is.True(!st.Connected)                                                   // not connected
			is.True(strings.Contains(st.LastError, "refused the credentials"))       // says what is wrong
			is.True(strings.Contains(st.LastError, "--fleet-user/--fleet-password")) // and what to check
			for i := range 3 {
				hs.allocate(t, fmt.Sprintf("local-%d", i)) // local service goes on
			}
			is.Equal(hs.pub.Status().LagEvents, uint64(3)) // the backlog waits in the log
		})
	}
	_ = is
	t.Run("right password", func(t *testing.T) {
		is := is.New(t)
		hs := startHost(t, "beta", h.ClientURL(), fleet.PublisherConfig{Conn: fleet.ConnOptions{User: "fleet", Password: "right"}})
		hs.allocate(t, "api")
		hs.waitCaughtUp(t, 5*time.Second)
		is.Equal(hs.pub.Status().LastError, "") // no error
	})
	t.Run("two kinds of credentials", func(t *testing.T) {
		is := is.New(t)
		_, err := fleet.NewPublisher(fleet.PublisherConfig{Log: &ledger.Log{}, Host: "a", Conn: fleet.ConnOptions{URL: h.ClientURL(), Token: "t", User: "u"}})
		is.Equal(ledger.ErrorCode(err), ledger.EINVALID) // refused at start
	})
}

// Events imported into the past of a ledger after its publisher's cursor
// passed them are published, once, whether the import ran while the
// publisher did or while it was stopped; fleet who and status at moments
// among them answer as the host does.
func TestImportedPastPublished(t *testing.T) {
	is := is.New(t)
	h := startHub(t, hub.Options{})
	url := h.ClientURL()
	cfg := fleet.PublisherConfig{SnapshotEvery: 3}
	hs := startHost(t, "alpha", url, cfg)
	ctx := testCtx(t)
	var instants []ulid.ULID
	var times []time.Time
	tick := func() {
		time.Sleep(3 * time.Millisecond)
		times = append(times, time.Now())
		instants = append(instants, ledger.UntilID(times[len(times)-1]))
		time.Sleep(3 * time.Millisecond)
	}
	tick()
	for round := range 4 {
		p := hs.allocate(t, fmt.Sprintf("svc-%d", round))
		tick()
		if round%2 == 0 {
			hs.release(t, p, "done")
			tick()
		}
	}
	hs.waitCaughtUp(t, 5*time.Second)
	// Imported tenures on ports the ledger never used, at moments among
	// its own events (each between two instants).
	seq := 0
	tenure := func(port, from, to int) []ledger.Event {
		id := func(i int) ulid.ULID {
			seq++
			return ulid.MustNew(ulid.Timestamp(times[i].Add(time.Millisecond)), ulid.DefaultEntropy())
		}
		src := &ledger.ImportSource{File: "port_registry.json", Line: seq + 1}
		return []ledger.Event{
			{ID: id(from), Type: ledger.EventAllocated, Port: port, Imported: src,
				Allocated: &ledger.Allocated{ServiceName: fmt.Sprintf("old-%d", port), StartedBy: "old", Purpose: "imported"}},
			{ID: id(to), Type: ledger.EventReleased, Port: port, Imported: src,
				Released: &ledger.Released{Reason: "imported release", ReleasedBy: "old"}},
		}
	}
	// While the publisher runs.
	res, err := hs.svc.Import(ctx, append(tenure(8050, 0, 2), tenure(8051, 3, 5)...))
	is.NoErr(err)
	is.Equal(res.Imported, 4)
	hs.waitCaughtUp(t, 5*time.Second)
	// While it is stopped: the count kept in the ledger tells on restart.
	hs.stop()
	res, err = hs.svc.Import(ctx, tenure(8052, 1, 4))
	is.NoErr(err)
	is.Equal(res.Imported, 2)
	hs.start(t, url, cfg)
	hs.waitCaughtUp(t, 5*time.Second)
	p := hs.allocate(t, "after")
	tick()
	hs.waitCaughtUp(t, 5*time.Second)
	_ = p

	got := hostEvents(t, url, "alpha")
	want := logIDs(t, hs.log)
	is.Equal(len(got), len(want)) // every event once
	slices.SortFunc(got, func(a, b ulid.ULID) int { return a.Compare(b) })
	is.Equal(got, want) // the same events
	r, _ := reader(t, url)
	ports := []int{8000, 8001, 8002, 8050, 8051, 8052}
	matchEachHost(t, r, []*host{hs}, instants, ports)
	fleet.SetClockSkew(r, 0)
	matchEachHost(t, r, []*host{hs}, instants, ports)
	now, err := r.Who(ctx, "alpha", 8050, ulid.ULID{})
	is.NoErr(err)
	is.True(now.Holder == nil) // the imported tenure is over now
	is.Equal(now.Previous.Allocation.ServiceName, "old-8050")
}

// With a snapshot after every event and no lower bound by the stream's
// time (a skew of an hour), time travel finds each moment's snapshot by
// the back pointers alone, through several levels of them.
func TestSnapshotSearchByBackPointers(t *testing.T) {
	h := startHub(t, hub.Options{})
	url := h.ClientURL()
	hs := startHost(t, "alpha", url, fleet.PublisherConfig{SnapshotEvery: 1})
	var instants []ulid.ULID
	for i := range 90 {
		p := hs.allocate(t, fmt.Sprintf("svc-%d", i%5))
		if i%3 != 0 {
			hs.release(t, p, "done")
		}
		if i%9 == 0 {
			hs.waitCaughtUp(t, 5*time.Second) // a round of its own, so a snapshot lies at this moment
			time.Sleep(2 * time.Millisecond)
			instants = append(instants, ledger.UntilID(time.Now()))
			time.Sleep(2 * time.Millisecond)
		}
	}
	hs.waitCaughtUp(t, 5*time.Second)
	r, _ := reader(t, url)
	fleet.SetClockSkew(r, time.Hour)
	matchEachHost(t, r, []*host{hs}, instants, []int{8000, 8001, 8002})
}
