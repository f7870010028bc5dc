package commands

import (
	"context"
	"fmt"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/portledger/portledger/ledger"
	"github.com/portledger/portledger/projection"
)

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

// Import writes events made from the original port manager's files (see
// ReadOriginal) into the past of the log. Events the ledger already has, by
// ID, are counted as duplicates and left alone, so importing the same files
// twice writes nothing the second time. A live allocation of the old
// registry (an event whose source is RegistryFile) is skipped when its port
// is held now. Nothing already in the ledger changes.
//
// The import runs on the writer, between two groups of commands: it writes
// the events and their index in one transaction, which also drops the
// snapshots taken after the earliest of them, then folds the registry again
// and takes those snapshots again. The file projections do not follow the
// past: the caller rebuilds them (projection.Replay, or Files.Rebuild).
//
// It returns EINVALID, writing nothing, for an event without an ID or an
// import source, one in the future, or one that does not encode.
func (l *Ledger) Import(ctx context.Context, evs []ledger.Event) (ledger.ImportResult, error) {
	var res ledger.ImportResult
	now := l.cfg.Now()
	seen := make(map[ulid.ULID]bool, len(evs))
	for i := range evs {
		e := &evs[i]
		if err := validateImported(e, now); err != nil {
			return res, err
		}
		if seen[e.ID] {
			return res, ledger.Errorf(ledger.EINVALID, "event %s is given twice", e.ID)
		}
		seen[e.ID] = true
	}
	if len(evs) == 0 {
		return res, nil
	}
	_, err := l.submit(ctx, &request{run: func() error {
		r, err := l.importRun(evs)
		res = r
		return err
	}})
	return res, err
}

// validateImported checks one event of an import.
func validateImported(e *ledger.Event, now time.Time) error {
	if e.ID == zeroID {
		return ledger.Errorf(ledger.EINVALID, "imported event without an ID")
	}
	if e.Imported == nil || e.Imported.File == "" {
		return ledger.Errorf(ledger.EINVALID, "event %s: imported events name their source file", e.ID)
	}
	if int64(e.ID.Time()) > now.UnixMilli() {
		return ledger.Errorf(ledger.EINVALID, "event %s (%s:%d): its time is in the future", e.ID, e.Imported.File, e.Imported.Line)
	}
	if e.Type != ledger.EventRangeChanged {
		if err := ledger.CheckPort(e.Port); err != nil {
			return ledger.Errorf(ledger.EINVALID, "event %s (%s:%d): %s", e.ID, e.Imported.File, e.Imported.Line, ledger.ErrorMessage(err))
		}
	}
	if _, err := ledger.AppendEncoded(nil, e); err != nil {
		return ledger.Errorf(ledger.EINVALID, "event %s (%s:%d): %v", e.ID, e.Imported.File, e.Imported.Line, err)
	}
	return nil
}

// importRun is the writer's part of Import.
func (l *Ledger) importRun(evs []ledger.Event) (ledger.ImportResult, error) {
	var res ledger.ImportResult
	ids := make([]ulid.ULID, len(evs))
	for i, e := range evs {
		ids[i] = e.ID
	}
	have, err := l.log.Has(ids)
	if err != nil {
		return res, err
	}
	l.mu.RLock()
	held := make(map[int]bool, len(l.reg.Allocs))
	for p := range l.reg.Allocs {
		held[p] = true
	}
	l.mu.RUnlock()
	fresh := make([]ledger.Event, 0, len(evs))
	for _, e := range evs {
		switch {
		case have[e.ID]:
			res.Duplicates++
		case e.Imported.File == RegistryFile && held[e.Port]:
			res.Skipped = append(res.Skipped, ledger.ImportProblem{File: e.Imported.File, Line: e.Imported.Line,
				Reason: fmt.Sprintf("port %d is held now: the old registry's allocation is not imported", e.Port)})
		default:
			fresh = append(fresh, e)
		}
	}
	if len(fresh) == 0 {
		return res, nil
	}
	if err := l.log.Insert(fresh); err != nil {
		return res, err
	}
	res.Imported = len(fresh)
	reg, err := l.refold()
	if err != nil {
		// The events are in; the registry in memory is behind the log
		// and the next start folds it right.
		return res, fmt.Errorf("import: fold the registry again: %w", err)
	}
	l.mu.Lock()
	l.reg = reg
	l.mu.Unlock()
	return res, nil
}

// refold folds the registry from the newest snapshot left after an insert
// and takes a snapshot at every SnapshotEvery-th event on the way, in place
// of the ones the insert dropped.
func (l *Ledger) refold() (*projection.Registry, error) {
	reg := projection.NewRegistry()
	snapID, data, ok, err := l.log.Snapshot(zeroID)
	if err != nil {
		return nil, err
	}
	if ok {
		if r, err := projection.UnmarshalSnapshot(data); err == nil {
			reg = r
		} else {
			snapID = zeroID
		}
	}
	var snaps []ledger.SnapshotAt
	every := l.cfg.SnapshotEvery
	err = l.log.Scan(snapID, zeroID, func(e ledger.Event) error {
		reg.Apply(e)
		if reg.Count%every == 0 {
			b, err := reg.MarshalSnapshot()
			if err != nil {
				return err
			}
			snaps = append(snaps, ledger.SnapshotAt{ID: reg.Last, Data: b})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := l.log.PutSnapshots(snaps); err != nil {
		return nil, err
	}
	return reg, nil
}
