package watchdog

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/oklog/ulid/v2"
	"github.com/portledger/portledger/ledger"
	"golang.org/x/sync/errgroup"
)

// Worker counts. Endpoint fetches wait on other processes, so many run at
// once; submissions wait on the ledger's group commit, which gets cheaper
// per event the more arrive together.
const (
	fetchWorkers  = 32
	submitWorkers = 16
)

// Sweep probes every allocation once, now, and submits what changed: health
// transitions, releases of dead or expired allocations, new conflicts. It
// waits for a sweep in progress (of Run or another caller) to finish first.
// The error is non-nil when the registry cannot be read (then nothing was
// probed) or when some submissions failed (the result is still complete).
func (w *Watchdog) Sweep(ctx context.Context) (ledger.SweepResult, error) {
	w.sweepMu.Lock()
	defer w.sweepMu.Unlock()
	// What the sweep writes is the watchdog's doing, whoever asked for the
	// sweep (the timer, a health-check request).
	ctx = ledger.WithActor(ctx, ledger.Actor{Via: ledger.ViaWatchdog, UID: os.Getuid(), PID: os.Getpid()})

	began := time.Now() // monotonic: for the duration only; decisions use the injected clock
	now := w.opts.Now()
	st, err := w.svc.Status(ctx, ulid.Zero)
	if err != nil {
		return ledger.SweepResult{}, fmt.Errorf("watchdog: read registry: %w", err)
	}
	allocs := st.PortManager.Allocations

	socks, lerr := w.sockets.list(ctx)
	if lerr != nil {
		w.opts.Logger.Warn("watchdog: cannot list listening sockets; connecting to each port instead", "err", lerr)
		socks = nil
	}
	// A UDP service serves once its socket is bound: a port with a UDP
	// socket counts as listening. Without the UDP list only TCP counts.
	udp, uerr := listUDP(ctx)
	if uerr != nil {
		w.opts.Logger.Warn("watchdog: cannot list UDP sockets; only TCP listeners count", "err", uerr)
	}
	probes := w.probeAll(ctx, allocs, socks, udp)

	res := ledger.SweepResult{At: now, Ports: make([]ledger.PortCheck, len(allocs)), Conflicts: []ledger.Conflict{}}
	decisions := make([]decision, len(allocs))
	seen := make(map[trackerKey]bool, len(allocs))
	var todo []int
	for i, a := range allocs {
		key := trackerKey{Port: a.Port, EventID: a.EventID, PID: a.PID}
		seen[key] = true
		t := w.trackers[key]
		if t == nil {
			t = &tracker{}
			w.trackers[key] = t
		}
		p := probes[i]
		if p.Heir > 0 {
			if adopted, reason := w.adopt(ctx, a, p); adopted {
				res.Ports[i] = ledger.PortCheck{
					Port: a.Port, ServiceName: a.ServiceName, PID: p.Heir, Alive: true, Listening: p.Listening,
					Endpoint: p.Endpoint, Health: current(a), Action: "pid " + strconv.Itoa(p.Heir) + " holds it now", Reason: reason,
				}
				delete(w.trackers, key)
				continue
			}
		}
		d := decide(a, p, t, now, w.opts)
		if d.Release != "" && p.Listening {
			d.Release += stillListening(ctx, p.Listeners)
		}
		decisions[i] = d
		res.Ports[i] = ledger.PortCheck{
			Port: a.Port, ServiceName: a.ServiceName, PID: a.PID,
			Alive: p.Alive, Listening: p.Listening, Endpoint: p.Endpoint,
			Health: current(a), Reason: d.Finding,
		}
		if d.To != current(a) || d.Release != "" {
			todo = append(todo, i)
		}
	}
	for key := range w.trackers {
		if !seen[key] {
			delete(w.trackers, key)
		}
	}

	var (
		issues atomic.Int64
		errMu  sync.Mutex
		errs   []error
	)
	var submits errgroup.Group // a bounded pool: every error is kept in errs
	submits.SetLimit(submitWorkers)
	for _, i := range todo {
		submits.Go(func() error {
			health, action, issue, err := w.act(ctx, allocs[i], probes[i], decisions[i])
			res.Ports[i].Health, res.Ports[i].Action = health, action
			if issue {
				issues.Add(1)
			}
			if err != nil {
				errMu.Lock()
				errs = append(errs, err)
				errMu.Unlock()
			}
			return nil
		})
	}
	_ = submits.Wait()

	if lerr == nil {
		found, err := w.conflicts(ctx, st.PortManager, socks)
		res.Conflicts = append(res.Conflicts, found...)
		issues.Add(int64(len(found)))
		if err != nil {
			errs = append(errs, err)
		}
	}

	dur := time.Since(began)
	res.DurationMS = float64(dur.Microseconds()) / 1000
	w.mu.Lock()
	w.sweeps++
	w.issues += issues.Load()
	w.ports = len(allocs)
	w.lastAt = now
	w.lastDur = dur
	w.mu.Unlock()
	if w.opts.OnSweep != nil {
		w.opts.OnSweep(dur)
	}
	return res, errors.Join(errs...)
}

// adopt records the heir of a gone process as the allocation's process. It
// reports whether it did, and the reason it recorded.
func (w *Watchdog) adopt(ctx context.Context, a ledger.Allocation, p probe) (bool, string) {
	reason := fmt.Sprintf("process %d %s; pid %d (%s), %s, listens on port %d: it holds the port now",
		a.PID, p.Gone, p.Heir, commandOf(ctx, p.Heir), p.HeirWhy, a.Port)
	_, err := w.svc.AdoptPID(ctx, a.Port, a.EventID, p.Heir, clip(reason))
	if err != nil {
		w.opts.Logger.Warn("watchdog: cannot hand the port to its listener", "port", a.Port, "pid", p.Heir, "err", err)
		return false, ""
	}
	w.opts.Logger.Info("pid adopted", "port", a.Port, "service", a.ServiceName, "reason", reason)
	return true, reason
}

// stillListening names the processes that listen on a port that is
// released anyway: a port is never freed silently under a listener.
func stillListening(ctx context.Context, pids []int) string {
	if len(pids) == 0 {
		return "; the port is still listened on, by a process the watchdog cannot name"
	}
	parts := make([]string, len(pids))
	for i, pid := range pids {
		parts[i] = fmt.Sprintf("pid %d (%s)", pid, commandOf(ctx, pid))
	}
	return "; the port is still listened on by " + strings.Join(parts, ", ") + ", not the service's"
}

// current is the allocation's health as the registry holds it.
func current(a ledger.Allocation) ledger.Health {
	if a.HealthStatus.Valid() {
		return a.HealthStatus
	}
	return ledger.HealthStarting
}

// probeAll probes every allocation: processes and the listing inline (they
// are cheap and shared), endpoint fetches (and, when the listing failed,
// connection attempts) by a bounded pool of workers.
func (w *Watchdog) probeAll(ctx context.Context, allocs []ledger.Allocation, socks listing, udp map[int]bool) []probe {
	out := make([]probe, len(allocs))
	procs := make(processCache)
	var slow []int
	for i, a := range allocs {
		p := &out[i]
		p.EndpointOK = true
		if a.PID > 0 {
			p.Alive, p.Gone = checkProcess(ctx, procs, a)
		}
		if socks != nil {
			p.Listening = len(socks[a.Port]) > 0
		}
		if udp[a.Port] {
			p.Listening = true
		}
		if a.PID > 0 && !p.Alive && len(socks[a.Port]) > 0 {
			// A wrapper (bash -c, npm start, a forking daemon) may be gone
			// while what it started still serves the port.
			p.Listeners = listenerPIDs(w.sockets.resolve(ctx, socks[a.Port]))
			p.Heir, p.HeirWhy = heir(ctx, a.PID, p.Listeners)
		}
		if socks == nil || wantsFetch(a, *p) {
			slow = append(slow, i)
		}
	}
	var fetches errgroup.Group // a bounded pool; probes do not fail
	fetches.SetLimit(fetchWorkers)
	for _, i := range slow {
		fetches.Go(func() error {
			a, p := allocs[i], &out[i]
			if socks == nil {
				p.Listening = p.Listening || dialListening(ctx, a.Port, w.opts.HTTPTimeout)
			}
			if wantsFetch(a, *p) {
				p.Endpoint, p.EndpointOK = w.http.check(ctx, a.HealthURL)
			}
			return nil
		})
	}
	_ = fetches.Wait()
	return out
}

// wantsFetch says whether the allocation's health URL is worth fetching: it
// has one, and its process (if it names one) is alive.
func wantsFetch(a ledger.Allocation, p probe) bool {
	return a.HealthURL != "" && (a.PID <= 0 || p.Alive)
}

// act submits one decision: the health transition first (a dead allocation
// is recorded dead before it is released), then the release. It returns the
// health after the sweep, "released" if the port was freed, and whether this
// counts as an issue (a transition to unhealthy or dead, or a release). An
// allocation that vanished or changed hands meanwhile is left alone.
func (w *Watchdog) act(ctx context.Context, a ledger.Allocation, p probe, d decision) (health ledger.Health, action string, issue bool, err error) {
	health = current(a)
	log := w.opts.Logger.With("port", a.Port, "service", a.ServiceName, "pid", a.PID)
	if d.To != health {
		err := w.svc.RecordHealth(ctx, ledger.HealthReport{
			Port: a.Port, EventID: a.EventID, To: d.To, Reason: clip(d.Finding),
			Alive: p.Alive, Listening: p.Listening, Endpoint: clip(p.Endpoint),
		})
		switch ledger.ErrorCode(err) {
		case "":
			log.Info("health changed", "from", health, "to", d.To, "reason", d.Finding)
			health = d.To
			issue = d.To == ledger.HealthUnhealthy || d.To == ledger.HealthDead
		case ledger.ENOTFOUND, ledger.ECONFLICT:
			return health, "", false, nil
		default:
			return health, "", false, fmt.Errorf("watchdog: record health of port %d: %w", a.Port, err)
		}
	}
	if d.Release == "" {
		return health, "", issue, nil
	}
	_, err = w.svc.Release(ctx, ledger.ReleaseRequest{
		Port: a.Port, EventID: a.EventID, ReleasedBy: ReleasedBy, Reason: clip(d.Release),
	})
	switch ledger.ErrorCode(err) {
	case "":
		log.Info("released", "reason", d.Release)
		return health, "released", true, nil
	case ledger.ENOTFOUND, ledger.ECONFLICT:
		return health, "", issue, nil
	default:
		return health, "", issue, fmt.Errorf("watchdog: release port %d: %w", a.Port, err)
	}
}

// clip shortens s to ledger.MaxText bytes without splitting a UTF-8
// sequence: the ledger refuses longer reasons and endpoints.
func clip(s string) string {
	if len(s) <= ledger.MaxText {
		return s
	}
	i := ledger.MaxText
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i]
}
