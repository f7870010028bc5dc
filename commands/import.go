package commands

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/portledger/portledger/ledger"
	"github.com/portledger/portledger/projection"
)

// Import writes events made from the original port manager's files (see
// ReadOriginal) into the past of the log. Events the ledger already has, by
// ID, are counted as duplicates and left alone, so importing the same files
// twice writes nothing the second time. An import writes the past only
// (see import_rules.go): an event of a type the original never wrote, with
// a string the live API would refuse, dated at or after the ledger's own
// first event on its port, or that would change who holds a port now,
// refuses the whole import with EINVALID, naming the event's position and
// file:line. Nothing already in the ledger changes.
//
// The import runs on the writer, between two groups of commands: it writes
// the events and their index in one transaction, which also drops the
// snapshots taken after the earliest of them, then folds the registry again
// and takes those snapshots again. The file projections do not follow the
// past: the caller rebuilds them (projection.Replay, or Files.Rebuild).
//
// It returns EINVALID, writing nothing, for an event without an ID or an
// import source, one in the future, one that does not encode, or one that
// breaks the rules above.
func (l *Ledger) Import(ctx context.Context, evs []ledger.Event) (ledger.ImportResult, error) {
	var res ledger.ImportResult
	now := l.cfg.Now()
	seen := make(map[ulid.ULID]bool, len(evs))
	for i := range evs {
		e := &evs[i]
		if err := validateImported(e, now); err != nil {
			return res, importRefused(i, e, "%s", ledger.ErrorMessage(err))
		}
		if seen[e.ID] {
			return res, importRefused(i, e, "event %s is given twice", e.ID)
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
	if e.ID.IsZero() {
		return ledger.Errorf(ledger.EINVALID, "imported event without an ID")
	}
	if e.Imported == nil || e.Imported.File == "" {
		return ledger.Errorf(ledger.EINVALID, "event %s: imported events name their source file", e.ID)
	}
	if err := validateText("imported_from", e.Imported.File, MaxPurpose); err != nil {
		return err
	}
	if int64(e.ID.Time()) > now.UnixMilli() {
		return ledger.Errorf(ledger.EINVALID, "its time is in the future")
	}
	if !importable(e.Type) {
		return ledger.Errorf(ledger.EINVALID, "%s events are not importable: the original port manager wrote only allocate, register_pid, health_change, stats and release", e.Type)
	}
	if err := ledger.CheckPort(e.Port); err != nil {
		return err
	}
	if _, err := ledger.AppendEncoded(nil, e); err != nil {
		return ledger.Errorf(ledger.EINVALID, "%v", err)
	}
	return validateImportedStrings(e)
}

// importRun is the writer's part of Import.
func (l *Ledger) importRun(evs []ledger.Event) (ledger.ImportResult, error) {
	var res ledger.ImportResult
	evs = slices.Clone(evs) // endBeforeLived may move some: the caller's stay as given
	if err := l.endBeforeLived(evs); err != nil {
		return res, err
	}
	ids := make([]ulid.ULID, len(evs))
	for i, e := range evs {
		ids[i] = e.ID
	}
	have, err := l.log.Has(ids)
	if err != nil {
		return res, err
	}
	fresh := make([]ledger.Event, 0, len(evs))
	index := make(map[ulid.ULID]int, len(evs))
	for i, e := range evs {
		if have[e.ID] {
			res.Duplicates++
			continue
		}
		fresh = append(fresh, e)
		index[e.ID] = i
	}
	if len(fresh) == 0 {
		return res, nil
	}
	if err := l.checkPastOnly(fresh, index); err != nil {
		return res, err
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
	reg.SetLastPortLookup(l.lastPort)
	l.mu.Lock()
	l.reg = reg
	l.mu.Unlock()
	return res, nil
}

// refold folds the registry from the newest snapshot left after an insert
// and takes a snapshot at every SnapshotEvery-th event on the way, in place
// of the ones the insert dropped.
func (l *Ledger) refold() (*projection.Registry, error) {
	var snaps []ledger.SnapshotAt
	every := l.cfg.SnapshotEvery
	reg, err := projection.StateAtEach(l.log, ulid.Zero, func(reg *projection.Registry) error {
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

// endBeforeLived moves a release that the import made up (ReleasedBy
// "import": the end of an old hold the original files never closed) to
// just before the ledger's own first event on its port, when it would fall
// at or after it: the ledger's own history is the next thing known of that
// port, so the old hold ends there, and the import stays in the past. The
// move depends only on the files and on the ledger's first event of the
// port, so importing the same files again gives the same IDs.
func (l *Ledger) endBeforeLived(evs []ledger.Event) error {
	first := map[int]ulid.ULID{}
	errFound := errors.New("found")
	for i := range evs {
		e := &evs[i]
		if e.Type != ledger.EventReleased || e.Released == nil || e.Released.ReleasedBy != "import" || ledger.CheckPort(e.Port) != nil {
			continue
		}
		f, ok := first[e.Port]
		if !ok {
			err := l.log.ScanPort(e.Port, ulid.Zero, ulid.Zero, func(x ledger.Event) error {
				if x.Imported == nil {
					f = x.ID
					return errFound
				}
				return nil
			})
			if err != nil && !errors.Is(err, errFound) {
				return err
			}
			first[e.Port] = f
		}
		if f.IsZero() || e.ID.Compare(f) < 0 {
			continue
		}
		ms := int64(f.Time()) - 1
		allocMS := int64(e.ID.Time()) - e.Released.DurationMS
		if ms <= allocMS {
			continue // the old hold began after the ledger's own: the rules refuse it
		}
		p := *e.Released
		p.DurationMS = ms - allocMS
		e.Released = &p
		_ = e.ID.SetTime(uint64(ms))
		e.At = time.Time{}
	}
	return nil
}
