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
