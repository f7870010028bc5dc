package projection

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/oklog/ulid/v2"
	"github.com/portledger/portledger/ledger"
)

// CheckSnapshots compares every snapshot of the log with the fold of the
// events it covers, and returns how many it compared and the first that
// does not match (nil: all did). The hash chain covers the events, not the
// snapshots, which the daemon starts from: a snapshot edited in the file
// would otherwise change what `status` shows with nothing to notice it.
//
// Where the chain has breaks an operator accepted (the events before them
// are not what they were), a snapshot before the newest such break is not
// compared: the fold goes on from it as the log's own account.
func CheckSnapshots(log *ledger.Log, accepted []ledger.ChainBreak) (checked int, brk *ledger.SnapshotBreak, err error) {
	type snap struct {
		id   ulid.ULID
		data []byte
	}
	var snaps []snap
	if err := log.ScanSnapshots(func(id ulid.ULID, data []byte) error {
		snaps = append(snaps, snap{id, bytes.Clone(data)})
		return nil
	}); err != nil {
		return 0, nil, err
	}
	if len(snaps) == 0 {
		return 0, nil, nil
	}
	var trustUntil ulid.ULID // snapshots up to here are bases, not checked
	for _, a := range accepted {
		id := a.EventID
		if id.IsZero() {
			id = snaps[len(snaps)-1].id // a break with no event: the end of the log
		}
		if id.Compare(trustUntil) > 0 {
			trustUntil = id
		}
	}
	reg := NewRegistry()
	i := 0
	// compare checks the snapshots that cover the events folded so far,
	// up to and including the one at last.
	compare := func(last ulid.ULID) error {
		for i < len(snaps) && snaps[i].id.Compare(last) <= 0 {
			s := snaps[i]
			i++
			stored, err := UnmarshalSnapshot(s.data)
			if err != nil {
				brk = &ledger.SnapshotBreak{ID: s.id, Problem: err.Error()}
				return errStopCheck
			}
			if s.id != last {
				brk = &ledger.SnapshotBreak{ID: s.id, Problem: "it covers no event of the log"}
				return errStopCheck
			}
			if !trustUntil.IsZero() && s.id.Compare(trustUntil) < 0 {
				reg = stored // before an accepted break: the next base
				continue
			}
			if p := registryDiff(reg, stored); p != "" {
				brk = &ledger.SnapshotBreak{ID: s.id, Problem: p}
				return errStopCheck
			}
			checked++
		}
		return nil
	}
	err = log.Scan(ulid.ULID{}, ulid.ULID{}, func(e ledger.Event) error {
		reg.Apply(e)
		return compare(e.ID)
	})
	if errors.Is(err, errStopCheck) {
		return checked, brk, nil
	}
	if err != nil {
		return checked, nil, err
	}
	if i < len(snaps) {
		return checked, &ledger.SnapshotBreak{ID: snaps[i].id, Problem: "it covers no event of the log"}, nil
	}
	return checked, nil, nil
}

var errStopCheck = errors.New("stop")

// registryDiff says how the stored snapshot differs from the fold, or ""
// when it does not. The services' last ports are not compared: snapshots
// of this version do not keep them.
func registryDiff(fold, stored *Registry) string {
	if fold.Range != stored.Range {
		return fmt.Sprintf("it says the range is %s, the events say %s", stored.Range, fold.Range)
	}
	if fold.Count != stored.Count || fold.Last != stored.Last {
		return fmt.Sprintf("it says %d events up to %s, the events say %d up to %s", stored.Count, stored.Last, fold.Count, fold.Last)
	}
	ports := make([]int, 0, len(fold.Allocs)+len(stored.Allocs))
	for p := range fold.Allocs {
		ports = append(ports, p)
	}
	for p := range stored.Allocs {
		if fold.Allocs[p] == nil {
			ports = append(ports, p)
		}
	}
	slices.Sort(ports)
	for _, p := range ports {
		want, got := jsonOf(fold.Allocs[p]), jsonOf(stored.Allocs[p])
		if !bytes.Equal(want, got) {
			return fmt.Sprintf("port %d: it holds %s, the events give %s", p, got, want)
		}
	}
	for p, c := range fold.Conflicts {
		if !bytes.Equal(jsonOf(c), jsonOf(stored.Conflicts[p])) {
			return fmt.Sprintf("port %d: its foreign listener differs from the events'", p)
		}
	}
	if len(fold.Conflicts) != len(stored.Conflicts) {
		return "its foreign listeners differ from the events'"
	}
	return ""
}

func jsonOf(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}
