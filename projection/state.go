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
	reg := NewRegistry()
	snapID, data, ok, err := log.Snapshot(at)
	if err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	if ok {
		if reg, err = UnmarshalSnapshot(data); err != nil {
			// A snapshot is only a shortcut: fold from the start instead.
			reg, snapID = NewRegistry(), ulid.ULID{}
		}
	}
	err = log.Scan(snapID, at, func(e ledger.Event) error {
		reg.Apply(e)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	return reg, nil
}
