// Package watchdog probes every allocation of the ledger on a fixed interval:
// is the recorded process alive (the same process, not a recycled PID), is
// its port listening, does its health endpoint answer. It never changes state
// itself: each health transition becomes a health_changed event submitted
// through Ledger.RecordHealth, each dead or expired allocation a release
// submitted through Ledger.Release, and each foreign listener in the managed
// range a conflict submitted through Ledger.RecordConflict. A steady service
// adds nothing to the log.
package watchdog

import (
	"context"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/portledger/portledger/ledger"
)

// Ledger is what the watchdog needs of a ledger: the registry it probes and
// the commands it submits. *commands.Ledger satisfies it; the watchdog runs
// where the ledger file is open (the daemon, or `ledger check` without one).
type Ledger interface {
	// Status returns the registry at a point (zero: now).
	Status(ctx context.Context, at ulid.ULID) (ledger.Status, error)
	// Allocation returns the holder of a port at a point; ENOTFOUND if free.
	Allocation(ctx context.Context, port int, at ulid.ULID) (ledger.Allocation, error)
	// RecordHealth records a health transition. ENOTFOUND if the
	// allocation is gone; no event when nothing changed.
	RecordHealth(ctx context.Context, rep ledger.HealthReport) error
	// RecordConflict records a foreign listener in the managed range;
	// ECONFLICT if the ledger holds the port.
	RecordConflict(ctx context.Context, port, pid int, command string) error
	// Release frees a port; with EventID set, only that allocation.
	Release(ctx context.Context, req ledger.ReleaseRequest) (ledger.Event, error)
	// AdoptPID records pid, with a reason, as the process of the
	// allocation eventID of port; ENOTFOUND if that allocation does not
	// hold the port now.
	AdoptPID(ctx context.Context, port int, eventID ulid.ULID, pid int, reason string) (ledger.Allocation, error)
}

// Defaults of Options.
const (
	DefaultInterval    = 30 * time.Second
	DefaultStartGrace  = 60 * time.Second
	DefaultHTTPTimeout = 2 * time.Second
	DefaultLease       = 10 * time.Minute
	DefaultFailures    = 2
)

// ReleasedBy is the released_by of every release the watchdog submits.
const ReleasedBy = "watchdog"

// Options configures a Watchdog. Zero fields take the Default* values.
type Options struct {
	// Interval is the time between two sweeps of Run.
	Interval time.Duration
	// StartGrace is how long a new allocation may stay without a listener
	// (or with a failing endpoint) before that counts as a failure. A
	// negative value means no grace at all.
	StartGrace time.Duration
	// HTTPTimeout bounds one fetch of a health URL.
	HTTPTimeout time.Duration
	// Lease is how long an allocation without a process is kept while
	// nothing listens on its port; an allocation's own lease overrides it.
	Lease time.Duration
	// Failures is the number of failed checks in a row before an allocation
	// becomes unhealthy or dead.
	Failures int
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Logger receives transitions and submission errors; nothing is logged
	// when nil.
	Logger *slog.Logger
	// OnSweep, when set, is called after every completed sweep with its
	// duration (for the daemon's metrics). It must be quick.
	OnSweep func(took time.Duration)
}

// withDefaults returns o with every zero field set to its default.
func (o Options) withDefaults() Options {
	if o.Interval <= 0 {
		o.Interval = DefaultInterval
	}
	switch {
	case o.StartGrace == 0:
		o.StartGrace = DefaultStartGrace
	case o.StartGrace < 0:
		o.StartGrace = 0
	}
	if o.HTTPTimeout <= 0 {
		o.HTTPTimeout = DefaultHTTPTimeout
	}
	if o.Lease <= 0 {
		o.Lease = DefaultLease
	}
	if o.Failures <= 0 {
		o.Failures = DefaultFailures
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Watchdog probes the allocations of one ledger. Its methods are safe for
// concurrent use; sweeps never overlap.
type Watchdog struct {
	svc     Ledger
	opts    Options
	self    int // our own PID: our listeners are never conflicts
	http    *endpointProber
	sockets *socketTable

	sweepMu  sync.Mutex              // serialises sweeps; guards trackers
	trackers map[trackerKey]*tracker // failure counters, by allocation

	mu      sync.Mutex // guards the fields below
	running bool
	sweeps  int64
	issues  int64
	ports   int
	lastAt  time.Time
	lastDur time.Duration
}

// New returns a watchdog over svc. Its failure counters start empty: the
// current health of every allocation is read from the registry, so a new
// watchdog over an old ledger emits nothing until something changes.
func New(svc Ledger, opts Options) *Watchdog {
	opts = opts.withDefaults()
	return &Watchdog{
		svc:      svc,
		opts:     opts,
		self:     os.Getpid(),
		http:     newEndpointProber(opts.HTTPTimeout),
		sockets:  newSocketTable(),
		trackers: make(map[trackerKey]*tracker),
	}
}

// Run sweeps at once and then every Interval until ctx is done. A failed
// sweep is logged and the next one runs on time. It returns nil when ctx is
// cancelled.
func (w *Watchdog) Run(ctx context.Context) error {
	w.setRunning(true)
	defer w.setRunning(false)

	t := time.NewTicker(w.opts.Interval)
	defer t.Stop()
	for {
		if _, err := w.Sweep(ctx); err != nil && ctx.Err() == nil {
			w.opts.Logger.Warn("watchdog sweep", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (w *Watchdog) setRunning(v bool) {
	w.mu.Lock()
	w.running = v
	w.mu.Unlock()
}

// Status reports what the watchdog has done so far: whether Run is active,
// the interval, the number of sweeps, the issues found (transitions to
// unhealthy or dead, releases, new conflicts), the allocations seen by the
// last sweep and when it ran.
func (w *Watchdog) Status() ledger.WatchdogStatus {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := ledger.WatchdogStatus{
		Running:         w.running,
		CheckInterval:   w.opts.Interval.Seconds(),
		ChecksPerformed: w.sweeps,
		IssuesDetected:  w.issues,
		MonitoredPorts:  w.ports,
	}
	if !w.lastAt.IsZero() {
		at := w.lastAt
		s.LastSweepAt = &at
		s.LastSweepMS = float64(w.lastDur.Microseconds()) / 1000
	}
	return s
}
