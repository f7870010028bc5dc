package projection

import (
	"fmt"

	"github.com/oklog/ulid/v2"
	"github.com/portledger/portledger/ledger"
)

// StateAt returns the registry after every event with ID <= at (zero at: the
// whole log). It starts from the newest snapshot at or before at and folds
// only the events after it, so the cost is bounded by the snapshot interval
// rather than the size of the log.
func StateAt(log *ledger.Log, at ulid.ULID) (*Registry, error) {
	return StateAtEach(log, at, nil)
}

// StateAtEach is StateAt that calls each, when not nil, after every event
// it folds, with the registry as it then stands: the writer's re-fold after
// an import takes snapshots on the way. It is the one "snapshot, then fold"
// of the ledger; Fold is the same walk from the start, without a snapshot.
func StateAtEach(log *ledger.Log, at ulid.ULID, each func(*Registry) error) (*Registry, error) {
	reg := NewRegistry()
	snapID, data, ok, err := log.Snapshot(at)
	if err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	if ok {
		if reg, err = UnmarshalSnapshot(data); err != nil {
			// A snapshot is only a shortcut: fold from the start instead.
			reg, snapID = NewRegistry(), ulid.Zero
		}
	}
	if err := foldInto(reg, log, snapID, at, each); err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	return reg, nil
}

// foldInto applies to reg every event after from up to and including until
// (zero: no bound on either side), calling each, when not nil, after each
// event.
func foldInto(reg *Registry, log *ledger.Log, from, until ulid.ULID, each func(*Registry) error) error {
	return log.Scan(from, until, func(e ledger.Event) error {
		reg.Apply(e)
		if each != nil {
			return each(reg)
		}
		return nil
	})
}
