package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/portledger/portledger/ledger"
	"github.com/portledger/portledger/projection"
	"golang.org/x/sync/errgroup"
)

// Time travel over the whole fleet: a host's registry at a moment is its
// last snapshot whose own last event is at or before the moment, plus the
// host's events after that snapshot up to the moment.
//
// The snapshots are found by the events' own IDs, never by the stream's
// clock alone. Two batched direct gets (multi-last over every host's
// snapshot subject) give each host's last snapshot, and its last snapshot
// stored before the moment less clockSkew: that one folds only events at or
// before the moment (a host's clock is at most clockSkew ahead of the
// hub's, and a snapshot is stored after its events were committed), but a
// backlog published late may have better ones after it. When the host's
// last snapshot is itself at or before the moment it is the answer (an idle
// host, or a moment near now); otherwise a galloping search on the host's
// snapshot subject, from the lower bound on, finds the last snapshot at or
// before the moment, which is the lower bound itself when the host was
// publishing on time (one direct get). What is left to fold is at most the
// events between two snapshots (PublisherConfig.SnapshotEvery, or
// SnapshotAge of a host's time).

// snap is a host's registry snapshot as found on the stream.
type snap struct {
	msg     storedMsg
	asOf    ulid.ULID // the last event it folds
	lastSeq uint64    // that event's stream sequence
	num     uint64    // its number among the host's snapshots (0: unnumbered)
	back    []snapRef // where the earlier ones are (HeaderSnapBack)
	imports []importRec
	seqs    []uint64 // the host's events since the snapshot before (HeaderSeqs)
	hasSeqs bool
}

func parseSnap(m storedMsg) (snap, error) {
	s := snap{msg: m}
	var err error
	if s.asOf, err = ulid.ParseStrict(m.Header.Get(HeaderLast)); err != nil {
		return s, fmt.Errorf("snapshot %d: bad %s", m.Seq, HeaderLast)
	}
	if s.lastSeq, err = strconv.ParseUint(m.Header.Get(HeaderLastSeq), 10, 64); err != nil {
		return s, fmt.Errorf("snapshot %d: bad %s", m.Seq, HeaderLastSeq)
	}
	if s.imports, err = parseImports(m.Header.Get(HeaderImports)); err != nil {
		return s, fmt.Errorf("snapshot %d: %w", m.Seq, err)
	}
	if v := m.Header.Get(HeaderSeqs); v != "" {
		if s.seqs, err = parseSeqs(v); err != nil {
			return s, fmt.Errorf("snapshot %d: %w", m.Seq, err)
		}
		s.hasSeqs = true
	}
	if v := m.Header.Get(HeaderSnapNum); v != "" {
		if s.num, err = strconv.ParseUint(v, 10, 64); err != nil {
			return s, fmt.Errorf("snapshot %d: bad %s", m.Seq, HeaderSnapNum)
		}
		if s.back, err = parseSnapRefs(m.Header.Get(HeaderSnapBack)); err != nil {
			return s, fmt.Errorf("snapshot %d: %w", m.Seq, err)
		}
	}
	return s, nil
}

// registry decodes the snapshot's registry.
func (s *snap) registry() (*projection.Registry, error) {
	reg, err := projection.UnmarshalSnapshot(s.msg.Data)
	if err != nil {
		return nil, fmt.Errorf("snapshot %d of %s: %w", s.msg.Seq, hostOfSubject(s.msg.Subject), err)
	}
	return reg, nil
}

// lastSnapshots returns each host's last snapshot stored before upTo (zero:
// the last of all), by host: one batched direct get, or one per host when
// the hosts are more than the server answers at once.
func (r *Reader) lastSnapshots(ctx context.Context, upTo time.Time) (map[string]snap, error) {
	out := map[string]snap{}
	msgs, err := multiLast(ctx, r.nc, SnapshotsPrefix+"*", upTo)
	if errors.Is(err, errTooMany) {
		msgs, err = r.lastSnapshotsEach(ctx, upTo)
	}
	if err != nil {
		return nil, err
	}
	for _, m := range msgs {
		s, err := parseSnap(m)
		if err != nil {
			return nil, err
		}
		if h := hostOfSubject(m.Subject); h != "" {
			out[h] = s
		}
	}
	return out, nil
}

// lastSnapshotsEach is lastSnapshots with a direct get per host.
func (r *Reader) lastSnapshotsEach(ctx context.Context, upTo time.Time) ([]storedMsg, error) {
	names, err := r.hostNames(ctx)
	if err != nil {
		return nil, err
	}
	msgs := make([]storedMsg, len(names))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for i, h := range names {
		g.Go(func() error {
			req := directRequest{MultiLast: []string{SnapshotSubject(h)}}
			if !upTo.IsZero() {
				t := upTo.UTC()
				req.UpToTime = &t
			}
			m, err := directGet(gctx, r.nc, req)
			if errors.Is(err, errNoMsg) {
				return nil
			}
			msgs[i] = m
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	out := msgs[:0]
	for _, m := range msgs {
		if m.Seq != 0 {
			out = append(out, m)
		}
	}
	return out, nil
}

// hostState is a host's registry at a moment and the last event it folds
// (zero when the host had no events then).
type hostState struct {
	reg  *projection.Registry
	asOf ulid.ULID
}

// statesAt folds every host's registry at a moment.
func (r *Reader) statesAt(ctx context.Context, at ulid.ULID) (map[string]hostState, error) {
	lasts, err := r.lastSnapshots(ctx, time.Time{})
	if err != nil {
		return nil, err
	}
	lows, err := r.lastSnapshots(ctx, ledger.IDTime(at).Add(-r.skew))
	if err != nil {
		return nil, err
	}
	states := make([]hostState, 0, len(lasts))
	names := make([]string, 0, len(lasts))
	for h := range lasts {
		names = append(names, h)
	}
	states = states[:len(names)]
	// The hosts are folded side by side: most of a fold is waiting for the
	// server.
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for i, h := range names {
		last := lasts[h]
		low, ok := lows[h]
		g.Go(func() error {
			var lowp *snap
			if ok {
				lowp = &low
			}
			st, err := r.hostAt(gctx, h, at, lowp, &last)
			states[i] = st
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	out := make(map[string]hostState, len(names))
	for i, h := range names {
		out[h] = states[i]
	}
	return out, nil
}

// hostAt folds host's registry at a moment, given its last snapshot stored
// before the moment less clockSkew (low, nil when none) and its last
// snapshot (last).
func (r *Reader) hostAt(ctx context.Context, host string, at ulid.ULID, low, last *snap) (hostState, error) {
	best, upper, err := r.snapshotAt(ctx, host, at, low, last)
	if err != nil {
		return hostState{}, err
	}
	if last != nil {
		// Events imported at or before the moment and published after
		// the snapshot: fold them by ID.
		var earliest ulid.ULID
		for _, rec := range last.imports {
			if rec.Earliest.Compare(at) <= 0 && (best == nil || best.msg.Seq < rec.Last) && (earliest.IsZero() || rec.Earliest.Compare(earliest) < 0) {
				earliest = rec.Earliest
			}
		}
		if !earliest.IsZero() {
			return r.hostAtWithImports(ctx, host, at, last.imports, earliest, last)
		}
	}
	st := hostState{reg: projection.NewRegistry()}
	var from uint64
	if best != nil {
		if st.reg, err = best.registry(); err != nil {
			return hostState{}, err
		}
		st.asOf, from = best.asOf, best.lastSeq
	}
	// The host's events after the snapshot, in log order, up to the
	// moment: by sequence when the next snapshot lists them, else a batch
	// on the host's subjects (after the host's last snapshot: near the end
	// of the stream). The next snapshot's last event is past the moment, so
	// none at or after it is needed.
	apply := func(e ledger.Event) bool {
		if e.ID.Compare(at) > 0 {
			return false
		}
		if e.ID.Compare(st.asOf) > 0 { // not imported and folded into the snapshot already
			st.reg.Apply(e)
			st.asOf = e.ID
		}
		return true
	}
	if upper != nil && upper.hasSeqs {
		msgs, err := directGetSeqs(ctx, r.nc, upper.seqs)
		if err != nil {
			return hostState{}, err
		}
		for _, m := range msgs {
			e, err := decodeEvent(m)
			if err != nil {
				return hostState{}, err
			}
			if !apply(e) {
				break
			}
		}
		return st, nil
	}
	var limit ulid.ULID
	if upper != nil {
		limit = upper.asOf
	}
	err = directBatchData(ctx, r.nc, HostEvents(host), from+1, foldBatch, func(data []byte) (bool, error) {
		var e ledger.Event
		if err := json.Unmarshal(data, &e); err != nil {
			return false, fmt.Errorf("an event of %s: %w", host, err)
		}
		if !limit.IsZero() && e.ID.Compare(limit) >= 0 {
			return false, nil
		}
		return apply(e), nil
	})
	return st, err
}

// skipBack finds the host's last snapshot at or before at going back from
// cur, a numbered snapshot past at, by its back pointers (newest first): the
// newest pointer at or before at and the one just newer than it bracket the
// answer; when they are consecutive snapshots it is found, else the newer
// one is the next cur, whose finer pointers split the bracket by 8 (see
// nextSnapRefs). Each step is a direct get by sequence.
func (r *Reader) skipBack(ctx context.Context, at ulid.ULID, cur *snap) (best, upper *snap, err error) {
	get := func(ref snapRef) (*snap, error) {
		m, err := directGet(ctx, r.nc, directRequest{Seq: ref.Seq})
		if err != nil {
			return nil, err // errNoMsg: gone with the stream's age limit
		}
		s, err := parseSnap(m)
		return &s, err
	}
	for {
		refs := cur.back
		i := slices.IndexFunc(refs, func(ref snapRef) bool { return ref.AsOf.Compare(at) <= 0 })
		var next snapRef
		switch {
		case i < 0 && len(refs) == 0:
			return nil, cur, nil // cur is the host's first snapshot
		case i < 0:
			next = refs[len(refs)-1] // every pointer is past at: go to the oldest
		case (i == 0 && refs[0].Num+1 == cur.num) || (i > 0 && refs[i].Num+1 == refs[i-1].Num):
			best, err := get(refs[i])
			if errors.Is(err, errNoMsg) {
				return nil, cur, nil
			}
			if err != nil || i == 0 {
				return best, cur, err
			}
			upper, err := get(refs[i-1])
			if errors.Is(err, errNoMsg) {
				return best, nil, nil
			}
			return best, upper, err
		case i == 0:
			// cur does not point at its predecessor (written before the
			// pointers had every level): refs[0] is at or before at, a
			// good start, and the fold goes on to at by a batch.
			best, err := get(refs[0])
			if errors.Is(err, errNoMsg) {
				return nil, cur, nil
			}
			return best, nil, err
		default:
			next = refs[i-1]
		}
		s, err := get(next)
		if errors.Is(err, errNoMsg) {
			return nil, cur, nil
		}
		if err != nil {
			return nil, nil, err
		}
		if s.num == 0 || s.num >= cur.num {
			return nil, nil, fmt.Errorf("snapshot %d: back pointer to %d, numbered %d", cur.msg.Seq, next.Seq, s.num)
		}
		cur = s
	}
}

// foldBatch is how many events a fold asks for at once: about what is left
// between two snapshots.
const foldBatch = 256

// snapshotAt finds host's last snapshot whose last event is at or before
// at (nil when none) and the snapshot after it (nil when none is known).
// low, when set, is at or before at; last is the host's last snapshot.
func (r *Reader) snapshotAt(ctx context.Context, host string, at ulid.ULID, low, last *snap) (best, upper *snap, err error) {
	if last != nil && last.asOf.Compare(at) <= 0 {
		return last, nil, nil
	}
	subj := SnapshotSubject(host)
	lo, hi := uint64(1), uint64(0)
	if low != nil && low.asOf.Compare(at) <= 0 {
		best, lo = low, low.msg.Seq+1
		// A host that published on time: the snapshot after the lower
		// bound is already past the moment.
		m, err := nextFrom(ctx, r.nc, subj, lo)
		if errors.Is(err, errNoMsg) {
			return best, nil, nil
		}
		if err != nil {
			return nil, nil, err
		}
		s, err := parseSnap(m)
		if err != nil {
			return nil, nil, err
		}
		if s.asOf.Compare(at) > 0 {
			return best, &s, nil
		}
	}
	if last != nil && last.num > 0 {
		return r.skipBack(ctx, at, last)
	}
	upper = last
	if last != nil {
		hi = last.msg.Seq
	} else {
		b, err := r.streamBounds(ctx)
		if err != nil {
			return nil, nil, err
		}
		hi = b.last + 1
	}
	// Snapshots without numbers (from an earlier publisher): they are on
	// the host's subject in the order of their last events, so halve the
	// range of sequences.
	for lo < hi {
		probe := lo + (hi-lo)/2
		m, err := nextFrom(ctx, r.nc, subj, probe)
		if errors.Is(err, errNoMsg) {
			hi = probe
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		s, err := parseSnap(m)
		if err != nil {
			return nil, nil, err
		}
		if s.asOf.Compare(at) > 0 {
			hi, upper = probe, &s
		} else {
			best, lo = &s, m.Seq+1
		}
	}
	return best, upper, nil
}

// snapRef points at one of a host's snapshots.
type snapRef struct {
	Num  uint64    // its number among the host's snapshots
	Seq  uint64    // its stream sequence
	AsOf ulid.ULID // the last event it folds
}

// snapBase is the base of the back pointers: level k holds the newest
// snapRefsPerLevel snapshots whose number is a multiple of snapBase^k, so a
// reader going back splits its bracket by snapBase at each step.
const (
	snapBase         = 8
	snapRefsPerLevel = snapBase - 1
	snapMaxLevels    = 12
)

// nextSnapRefs returns the back pointers of the snapshot after s (newest
// first, each snapshot once), from the pointers that s carried (back) and
// s itself.
func nextSnapRefs(back []snapRef, s snapRef) []snapRef {
	all := append([]snapRef{s}, back...)
	slices.SortFunc(all, func(a, b snapRef) int { return cmpUint(b.Num, a.Num) })
	keep := map[uint64]bool{}
	for k, m := 0, uint64(1); k < snapMaxLevels; k, m = k+1, m*snapBase {
		n := 0
		for _, r := range all {
			if r.Num%m == 0 && n < snapRefsPerLevel {
				keep[r.Num] = true
				n++
			}
		}
		if n == 0 {
			break
		}
	}
	out := make([]snapRef, 0, len(keep))
	for _, r := range all {
		if keep[r.Num] && (len(out) == 0 || out[len(out)-1].Num != r.Num) {
			out = append(out, r)
		}
	}
	return out
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func formatSnapRefs(refs []snapRef) string {
	var b strings.Builder
	for i, r := range refs {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%d:%d:%s", r.Num, r.Seq, r.AsOf)
	}
	return b.String()
}

func parseSnapRefs(v string) ([]snapRef, error) {
	if v == "" {
		return nil, nil
	}
	var out []snapRef
	for _, f := range strings.Split(v, ",") {
		parts := strings.Split(f, ":")
		if len(parts) != 3 {
			return nil, fmt.Errorf("bad snapshot pointer %q", f)
		}
		num, err1 := strconv.ParseUint(parts[0], 10, 64)
		seq, err2 := strconv.ParseUint(parts[1], 10, 64)
		id, err3 := ulid.ParseStrict(parts[2])
		if err := errors.Join(err1, err2, err3); err != nil {
			return nil, fmt.Errorf("bad snapshot pointer %q: %w", f, err)
		}
		out = append(out, snapRef{Num: num, Seq: seq, AsOf: id})
	}
	return out, nil
}

func formatSeqs(seqs []uint64) string {
	if len(seqs) == 0 {
		return "-"
	}
	var b strings.Builder
	var prev uint64
	for i, q := range seqs {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatUint(q-prev, 10))
		prev = q
	}
	return b.String()
}

func parseSeqs(v string) ([]uint64, error) {
	if v == "-" {
		return nil, nil
	}
	out := make([]uint64, 0, strings.Count(v, ",")+1)
	var prev uint64
	for _, f := range strings.Split(v, ",") {
		d, err := strconv.ParseUint(f, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("bad %s: %w", HeaderSeqs, err)
		}
		prev += d
		out = append(out, prev)
	}
	return out, nil
}
