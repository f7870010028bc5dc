package projection

import (
	"fmt"

	"github.com/portledger/portledger/ledger"
)

// Rebuild rewrites every file from the log, as Replay does, and carries on
// from there. The daemon calls it after an import: imported events land in
// the past of the log, where CatchUp, which only appends after its
// position, would never write them. Calls of CatchUp wait for it.
func (f *Files) Rebuild() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return fmt.Errorf("projection files: %w", ledger.ErrClosed)
	}
	f.forget()
	if _, err := Replay(f.layout, f.log, ReplayOptions{}); err != nil {
		return err
	}
	return f.load()
}

// Mend rebuilds the files when events were inserted into the past of the
// log since they were last rebuilt (ledger.Log.PastChanged): an import
// whose process was killed before it rebuilt them. It then clears the mark.
// It reports whether it rebuilt.
func (f *Files) Mend() (bool, error) {
	pc, ok, err := f.log.PastChanged()
	if err != nil || !ok {
		return false, err
	}
	if err := f.Rebuild(); err != nil {
		return false, err
	}
	return true, f.log.ClearPastChange(pc)
}

// ReplayAndMend is Replay for a caller that rebuilds everything after an
// import: it also clears the log's mark of a changed past.
func ReplayAndMend(layout ledger.Layout, log *ledger.Log) error {
	pc, ok, err := log.PastChanged()
	if err != nil {
		return err
	}
	if _, err := Replay(layout, log, ReplayOptions{}); err != nil {
		return err
	}
	if ok {
		return log.ClearPastChange(pc)
	}
	return nil
}
