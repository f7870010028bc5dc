// Package commands is the write side of the ledger: it validates commands
// against the current registry, decides their events, and appends them
// through one writer goroutine that commits whole groups of commands in one
// bbolt transaction. It also answers reads, now and at any point of the past.
package commands

import (
	"context"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/portledger/portledger/ledger"
	"github.com/portledger/portledger/projection"
)

// Defaults.
const (
	DefaultSnapshotEvery = 10000
	DefaultMaxBatch      = 256
	// StatsInterval is the shortest time between two stats events of one
	// allocation; reports in between are kept in memory and folded into the
	// next event (or the release).
	StatsInterval = time.Minute
)

// Config configures a Ledger.
type Config struct {
	Log           *ledger.Log
	Now           func() time.Time                   // default time.Now
	PortFree      func(port int) error               // default ProbePort
	UDPPortFree   func(port int) error               // default ProbeUDPPort; asked when a request wants UDP
	Process       func(pid int) (ProcessInfo, error) // default LookupProcess
	SnapshotEvery uint64                             // default DefaultSnapshotEvery
	MaxBatch      int                                // commands per transaction, default DefaultMaxBatch
	Observer      Observer                           // told of every commit and refused allocation; default none
	// UsageMemory is how many services' counts a usage read holds in
	// memory before it writes them to a temporary file; default
	// DefaultUsageMemory.
	UsageMemory int
}

// Ledger is the command side on one open log. All writes of a process go
// through its single writer goroutine; reads are served from an in-memory
// registry (now) or folded from snapshots and the log (the past).
type Ledger struct {
	cfg  Config
	log  *ledger.Log
	reqs chan *request

	mu  sync.RWMutex // guards reg
	reg *projection.Registry

	subMu sync.Mutex
	subs  map[*subscription]struct{}
	pubq  chan []ledger.Event // committed groups, in order, for the publisher
	pubed chan struct{}       // closed when the publisher has ended

	statsMu sync.Mutex // guards stats
	stats   map[int]*pendingStats

	stopOnce      sync.Once
	stopPublisher sync.Once
	stop          chan struct{}
	done          chan struct{}
}

var (
	_ ledger.Service      = (*Ledger)(nil)
	_ ledger.EventService = (*Ledger)(nil)
)

// New folds the registry out of cfg.Log (from the newest snapshot on) and
// starts the writer. Close stops it; the log stays open.
func New(cfg Config) (*Ledger, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.PortFree == nil {
		cfg.PortFree = ProbePort
	}
	if cfg.UDPPortFree == nil {
		cfg.UDPPortFree = ProbeUDPPort
	}
	if cfg.Process == nil {
		cfg.Process = LookupProcess
	}
	if cfg.SnapshotEvery == 0 {
		cfg.SnapshotEvery = DefaultSnapshotEvery
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = DefaultMaxBatch
	}
	if cfg.UsageMemory <= 0 {
		cfg.UsageMemory = DefaultUsageMemory
	}
	if cfg.Observer == nil {
		cfg.Observer = nopObserver{}
	}
	l := &Ledger{
		cfg:   cfg,
		log:   cfg.Log,
		reqs:  make(chan *request, 4*DefaultMaxBatch),
		subs:  make(map[*subscription]struct{}),
		pubq:  make(chan []ledger.Event, 1024),
		pubed: make(chan struct{}),
		stats: make(map[int]*pendingStats),
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
	}
	reg, err := projection.StateAt(cfg.Log, ulid.Zero) // the whole log
	if err != nil {
		return nil, err
	}
	reg.SetLastPortLookup(l.lastPort)
	l.reg = reg
	go l.writer()
	go l.publisher()
	return l, nil
}

// Close stops accepting commands, lets the writer finish what it has taken,
// and ends every subscription. It does not close the log.
func (l *Ledger) Close() error {
	l.stopOnce.Do(func() { close(l.stop) })
	<-l.done
	l.stopPublisher.Do(func() { close(l.pubq) })
	<-l.pubed
	l.subMu.Lock()
	for s := range l.subs {
		s.closeLocked()
		delete(l.subs, s)
	}
	l.subMu.Unlock()
	return nil
}

// Log returns the underlying log.
func (l *Ledger) Log() *ledger.Log { return l.log }

// Range returns the managed range now.
func (l *Ledger) Range() ledger.Range {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.reg.Range
}

// Registry returns a copy of the current state.
func (l *Ledger) Registry() *projection.Registry {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.reg.Clone()
}

// submit hands a command to the writer and waits for its answer. The actor
// that ctx carries (ledger.WithActor), if any, is recorded on the command's
// events. A caller
// whose context ends first gets the context's error, but the command may
// still commit: the writer never abandons a command it has taken.
func (l *Ledger) submit(ctx context.Context, r *request) (result, error) {
	r.done = make(chan result, 1)
	if a, ok := ledger.ActorFrom(ctx); ok {
		if err := a.Validate(); err != nil {
			return result{}, ledger.Errorf(ledger.EINTERNAL, "%v", err)
		}
		r.actor = &a
	}
	select {
	case l.reqs <- r:
	case <-l.stop:
		return result{}, ledger.Errorf(ledger.EINTERNAL, "%s", errClosed)
	case <-ctx.Done():
		return result{}, ctx.Err()
	}
	select {
	case res := <-r.done:
		return res, res.err
	case <-l.done:
		// The writer has ended: it answered r before it did, or r came
		// too late and was never taken.
		select {
		case res := <-r.done:
			return res, res.err
		default:
			return result{}, ledger.Errorf(ledger.EINTERNAL, "%s", errClosed)
		}
	case <-ctx.Done():
		return result{}, ctx.Err()
	}
}

// lastPort answers sticky allocation from the log's index of the services'
// last ports; an error reading it only loses the stickiness.
func (l *Ledger) lastPort(service string) (int, bool) {
	p, ok, err := l.log.LastPort(service)
	return p, ok && err == nil
}
