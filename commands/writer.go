package commands

import (
	"errors"
	"fmt"
	"time"

	"github.com/portledger/portledger/ledger"
	"github.com/portledger/portledger/projection"
)

// errClosed is returned to commands submitted after Close.
var errClosed = errors.New("the ledger is shutting down")

// request is one command waiting for the writer. decide runs on the writer
// goroutine against a draft of the registry that already holds the effects
// of the commands before it in the same group; it returns the events to
// append (none is fine) or an error that refuses the command alone.
type request struct {
	decide func(draft *projection.Registry, now time.Time) ([]ledger.Event, error)
	done   chan result
	// run, when set instead of decide, is a command that rewrites the
	// registry itself (an import): it runs alone, after the commands
	// before it are committed and before those after it are decided.
	run func() error
	// actor is who asked, from the caller's context: stamped on every
	// event decide returns that has none.
	actor *ledger.Actor
}

// result is the writer's answer: the committed events, and a copy of the
// allocation of the command's port right after them (nil if the port is free).
type result struct {
	events []ledger.Event
	alloc  *ledger.Allocation
	err    error
}

// writer is the only goroutine that appends to the log. It takes a group of
// waiting commands, decides them in order, commits all their events in one
// transaction (one fsync pair), applies them to the registry, and only then
// answers the callers. If the commit fails every command of the group fails
// and the registry is untouched.
func (l *Ledger) writer() {
	defer close(l.done)
	batch := make([]*request, 0, l.cfg.MaxBatch)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	expected, wait := 1, minGatherWait
	for {
		batch = batch[:0]
		select {
		case r := <-l.reqs:
			batch = append(batch, r)
		case <-l.stop:
			l.refuseQueued()
			return
		}
		batch = l.gather(batch, expected, wait, timer)
		start := time.Now()
		l.commitRuns(batch)
		wait = min(max(time.Since(start), minGatherWait), maxGatherWait)
		// The callers now active: those just answered, who are about to
		// send again, and those who queued meanwhile.
		expected = min(len(batch)+len(l.reqs), l.cfg.MaxBatch)
	}
}

// refuseQueued answers the commands still queued when the writer stops.
func (l *Ledger) refuseQueued() {
	for {
		select {
		case r := <-l.reqs:
			r.done <- result{err: ledger.Errorf(ledger.EINTERNAL, "%s", errClosed)}
		default:
			return
		}
	}
}

// Bounds of how long the writer waits for active callers to come back
// before it commits a smaller group: the last commit's time.
const (
	minGatherWait = 100 * time.Microsecond
	maxGatherWait = 2 * time.Millisecond
)

// gather adds waiting commands to batch until it holds expected ones: the
// callers active around the last commit, those it answered (usually about
// to send their next command, like a client that allocates, then releases)
// and those that queued meanwhile. Committing without them would split
// them into groups that each pay for their own fsyncs, so the writer waits
// up to wait for them: a commit's time spent waiting buys a group that
// holds everyone. A lone caller never waits.
func (l *Ledger) gather(batch []*request, expected int, wait time.Duration, timer *time.Timer) []*request {
	waiting := false
	defer func() {
		if waiting {
			timer.Stop() // since Go 1.23 a stopped timer delivers nothing stale
		}
	}()
	for len(batch) < l.cfg.MaxBatch {
		select {
		case r := <-l.reqs:
			batch = append(batch, r)
			continue
		default:
		}
		if len(batch) >= expected {
			return batch
		}
		if !waiting {
			timer.Reset(wait)
			waiting = true
		}
		select {
		case r := <-l.reqs:
			batch = append(batch, r)
		case <-timer.C:
			waiting = false
			return batch
		case <-l.stop:
			return batch
		}
	}
	return batch
}

func (l *Ledger) commit(batch []*request) {
	start := time.Now()
	now := l.cfg.Now()
	// The draft reads the services' last ports through to l.reg, which
	// changes only on this goroutine, below, after the draft is done with.
	l.mu.RLock()
	draft := l.reg.Draft()
	l.mu.RUnlock()

	results := make([]result, len(batch))
	spans := make([][2]int, len(batch))
	var events []ledger.Event
	for i, r := range batch {
		evs, err := r.decide(draft, now)
		if err != nil {
			results[i].err = err
			continue
		}
		spans[i] = [2]int{len(events), len(events) + len(evs)}
		for j := range evs {
			if evs[j].Actor == nil {
				evs[j].Actor = r.actor
			}
		}
		for _, e := range evs {
			draft.Apply(e)
		}
		events = append(events, evs...)
	}

	if len(events) > 0 {
		committed, err := l.log.Append(events, l.snapshotFunc())
		if err != nil {
			err = fmt.Errorf("commit: %w", err)
			for i := range batch {
				if results[i].err == nil && spans[i][1] > spans[i][0] {
					results[i].err = err
				}
			}
			events = nil
		} else {
			events = committed
		}
	}

	l.mu.Lock()
	for i := range batch {
		if results[i].err != nil {
			continue
		}
		s := spans[i]
		for _, e := range events[s[0]:s[1]] {
			l.reg.Apply(e)
		}
		results[i].events = events[s[0]:s[1]]
		if len(results[i].events) > 0 {
			if a := l.reg.Allocs[results[i].events[0].Port]; a != nil {
				cp := *a
				results[i].alloc = &cp
			}
		}
	}
	l.mu.Unlock()

	l.cfg.Observer.Committed(events, len(batch), time.Since(start))
	if len(events) > 0 {
		l.pubq <- events // the publisher fans out; the callers need not wait for it
	}
	for i, r := range batch {
		r.done <- results[i]
	}
}

// snapshotFunc returns the hook that stores a registry snapshot in the same
// transaction as the events that complete every SnapshotEvery-th event.
func (l *Ledger) snapshotFunc() ledger.SnapshotFunc {
	every := l.cfg.SnapshotEvery
	return func(count uint64, batch []ledger.Event) ([]byte, error) {
		before := count - uint64(len(batch))
		if count/every == before/every {
			return nil, nil
		}
		l.mu.RLock()
		reg := l.reg.Clone()
		l.mu.RUnlock()
		for _, e := range batch {
			reg.Apply(e)
		}
		return reg.MarshalSnapshot()
	}
}

// commitRuns commits a group, except that a request with run set runs
// alone: the commands before it are committed first, and those after it
// are decided against the registry it leaves.
func (l *Ledger) commitRuns(batch []*request) {
	for len(batch) > 0 {
		i := 0
		for i < len(batch) && batch[i].run == nil {
			i++
		}
		if i > 0 {
			l.commit(batch[:i])
		}
		if i == len(batch) {
			return
		}
		r := batch[i]
		r.done <- result{err: r.run()}
		batch = batch[i+1:]
	}
}
