package watchdog

import (
	"fmt"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/portledger/portledger/ledger"
)

// probe is what one sweep found out about one allocation.
type probe struct {
	Alive      bool   // the recorded process runs (meaningless without a PID)
	Gone       string // why the recorded process counts as gone: "exited", ...
	Listening  bool
	Endpoint   string // "" when not fetched, "ok", or what failed
	EndpointOK bool   // true unless a fetched endpoint failed
	// Listeners are the processes that listen on the port, looked up when
	// the recorded process is gone (nil otherwise, or when unknown).
	Listeners []int
	// Heir is the listener that carries the service on after its recorded
	// process is gone, and HeirWhy says why it counts as the service's.
	Heir    int
	HeirWhy string
}

// trackerKey names one allocation and its process: a port, the ID of its
// allocated event (so counters of an old holder never apply to a new one)
// and the PID (so a newly registered process starts with clean counters).
type trackerKey struct {
	Port    int
	EventID ulid.ULID
	PID     int
}

// tracker is the watchdog's memory of one allocation between sweeps. It
// lives only in memory: a restarted watchdog starts with empty counters.
type tracker struct {
	fails int       // failed checks in a row
	gone  int       // checks in a row that found the process gone
	quiet time.Time // first check without a listener
	// listened is set once a check saw the port listening: an allocation
	// that never listened ends by its lease even with a live process.
	listened bool
}

// decision is what a sweep does about one allocation.
type decision struct {
	To      ledger.Health // the state after the sweep; a change if != from
	Finding string        // what the probe found, in words
	Release string        // non-empty: release the allocation with this reason
}

// decide folds one probe into the allocation's tracker and says what to do.
// It is a pure function of its inputs and t, so the state machine can be
// tested without processes or sockets.
//
//	starting  -> healthy    as soon as the port listens (and the endpoint answers)
//	any       -> unhealthy  alive, but not listening or endpoint failing for
//	                        o.Failures checks in a row (after the start grace)
//	any       -> dead       process gone for o.Failures checks in a row; then released
//	starting  (no PID, never listened) released when the lease runs out
//	any       (a live PID that never listened) released when the lease runs
//	          out, so a process that will never serve cannot pin a port
func decide(a ledger.Allocation, p probe, t *tracker, now time.Time, o Options) decision {
	from := a.HealthStatus
	if !from.Valid() {
		from = ledger.HealthStarting
	}
	d := decision{To: from}
	hasPID := a.PID > 0

	switch {
	case hasPID && !p.Alive:
		t.fails++
		t.gone++
		t.quiet = time.Time{}
		d.Finding = fmt.Sprintf("process %d %s", a.PID, p.Gone)
		switch {
		case t.gone >= o.Failures:
			d.To = ledger.HealthDead
			d.Release = d.Finding
		case t.fails >= o.Failures:
			d.To = ledger.HealthUnhealthy
		default:
			d.Finding += checkCount(t.gone, o.Failures)
		}

	case p.Listening && p.EndpointOK:
		*t = tracker{listened: true}
		d.To = ledger.HealthHealthy
		if hasPID {
			d.Finding = fmt.Sprintf("process %d is alive and port %d is listening", a.PID, a.Port)
		} else {
			d.Finding = fmt.Sprintf("port %d is listening (no process registered)", a.Port)
		}
		if p.Endpoint == "ok" {
			d.Finding += "; health endpoint ok"
		}

	case !hasPID && !p.Listening:
		// Nobody to watch and nobody serving: the lease decides. An
		// allocation that never listened counts from its allocation, one
		// that stopped listening from the first check that saw it stop.
		t.gone = 0
		since := a.AllocatedAt
		if from != ledger.HealthStarting {
			if t.quiet.IsZero() {
				t.quiet = now
			}
			since = t.quiet
		}
		lease := leaseOf(a, o)
		left := lease - now.Sub(since)
		if left <= 0 {
			d.Release = fmt.Sprintf("lease of %s ran out: no process registered and nothing listening on port %d", lease, a.Port)
			d.Finding = d.Release
			return d
		}
		d.Finding = fmt.Sprintf("nothing listening on port %d and no process registered; lease ends in %s", a.Port, left.Round(time.Second))
		if from == ledger.HealthStarting {
			return d // reserved for later: not a failure until the lease ends
		}
		t.fails++
		if t.fails >= o.Failures {
			d.To = ledger.HealthUnhealthy
		} else {
			d.Finding += checkCount(t.fails, o.Failures)
		}

	default: // alive (or served without a PID), but not listening or endpoint failing
		t.gone = 0
		if p.Listening {
			t.listened = true
		}
		if !t.listened && from != ledger.HealthHealthy {
			// Never seen listening: the lease bounds how long a live
			// process may hold a port it does not serve. Counted from the
			// allocation while it is starting, else (a watchdog started
			// since) from the first check that found the port quiet.
			if t.quiet.IsZero() {
				t.quiet = now
				if from == ledger.HealthStarting {
					t.quiet = a.AllocatedAt
				}
			}
			if lease := leaseOf(a, o); now.Sub(t.quiet) >= lease {
				d.Release = fmt.Sprintf("lease of %s ran out: process %d never listened on port %d", lease, a.PID, a.Port)
				d.Finding = d.Release
				return d
			}
		} else {
			t.quiet = time.Time{}
		}
		switch {
		case !p.Listening:
			d.Finding = fmt.Sprintf("process %d is alive but nothing listens on port %d", a.PID, a.Port)
		default:
			d.Finding = fmt.Sprintf("port %d is listening but the health endpoint failed: %s", a.Port, p.Endpoint)
		}
		if from == ledger.HealthStarting && now.Sub(a.AllocatedAt) < o.StartGrace {
			d.Finding += fmt.Sprintf(" (start grace %s)", o.StartGrace)
			return d
		}
		t.fails++
		if t.fails >= o.Failures {
			d.To = ledger.HealthUnhealthy
		} else {
			d.Finding += checkCount(t.fails, o.Failures)
		}
	}
	return d
}

// leaseOf returns the allocation's own lease, else the watchdog's.
func leaseOf(a ledger.Allocation, o Options) time.Duration {
	if a.Lease > 0 {
		return time.Duration(a.Lease)
	}
	return o.Lease
}

// checkCount renders the progress towards a transition, e.g. " (check 1 of 2)".
func checkCount(n, of int) string {
	return fmt.Sprintf(" (failed check %d of %d)", n, of)
}
