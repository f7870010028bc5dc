package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/oklog/ulid/v2"
	"github.com/portledger/portledger/ledger"
	"github.com/portledger/portledger/projection"
)

// Reader answers fleet-wide questions: the live view from the buckets, the
// past from the stream. A host's state at a moment starts from its last
// snapshot before the moment and folds only the events after it; one port's
// past is read on that port's own subject. It is what `ledger fleet` and
// /api/fleet use, and what a dashboard would.
type Reader struct {
	nc   *nats.Conn
	js   jetstream.JetStream
	now  func() time.Time
	skew time.Duration // clockSkew; tests set less
}

// NewReader reads the fleet over nc. now is the clock (nil: time.Now).
func NewReader(nc *nats.Conn, now func() time.Time) (*Reader, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	if now == nil {
		now = time.Now
	}
	return &Reader{nc: nc, js: js, now: now, skew: clockSkew}, nil
}

// clockSkew is how far a host's clock may be ahead of the hub's: reads by
// time start this much earlier on the stream, whose times are the hub's.
// Hosts and hubs kept by NTP are well within it.
const clockSkew = 5 * time.Second

// live reads every allocation and heartbeat of the buckets.
func (r *Reader) live(ctx context.Context) (map[string][]ledger.Allocation, map[string]Heartbeat, error) {
	allocs := map[string][]ledger.Allocation{}
	beats := map[string]Heartbeat{}
	err := r.watchAll(ctx, LiveBucket, func(key string, v []byte) error {
		host, _, ok := strings.Cut(key, ".")
		if !ok {
			return nil
		}
		var a ledger.Allocation
		if err := json.Unmarshal(v, &a); err != nil {
			return fmt.Errorf("live view %s: %w", key, err)
		}
		allocs[host] = append(allocs[host], a)
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	err = r.watchAll(ctx, HostsBucket, func(key string, v []byte) error {
		var hb Heartbeat
		if err := json.Unmarshal(v, &hb); err != nil {
			return fmt.Errorf("heartbeat %s: %w", key, err)
		}
		beats[key] = hb
		return nil
	})
	return allocs, beats, err
}

// watchAll calls fn for the current value of every key of a bucket.
func (r *Reader) watchAll(ctx context.Context, bucket string, fn func(key string, v []byte) error) error {
	ctx, cancel := bounded(ctx)
	defer cancel()
	kv, err := r.js.KeyValue(ctx, bucket)
	if err != nil {
		return fmt.Errorf("bucket %s: %w", bucket, err)
	}
	w, err := kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return fmt.Errorf("bucket %s: %w", bucket, err)
	}
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case e, ok := <-w.Updates():
			if !ok || e == nil {
				return nil // nil marks the end of the current values
			}
			if err := fn(e.Key(), e.Value()); err != nil {
				return err
			}
		}
	}
}

// Hosts lists the hosts that have events on the stream, with the span of
// their events.
func (r *Reader) Hosts(ctx context.Context) ([]ledger.FleetHostRange, error) {
	names, err := r.hostNames(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]ledger.FleetHostRange, 0, len(names))
	for _, h := range names {
		hr := ledger.FleetHostRange{Host: h}
		if m, err := nextFrom(ctx, r.nc, HostEvents(h), 1); err == nil {
			hr.First, _ = eventID(m.Header)
		} else if !errors.Is(err, errNoMsg) {
			return nil, err
		}
		if m, err := lastBefore(ctx, r.nc, HostEvents(h), 0); err == nil {
			hr.Last, _ = eventID(m.Header)
		} else if !errors.Is(err, errNoMsg) {
			return nil, err
		}
		out = append(out, hr)
	}
	return out, nil
}

// hostNames lists the hosts with a snapshot on the stream (each host's
// publisher sends one after its first events), sorted.
func (r *Reader) hostNames(ctx context.Context) ([]string, error) {
	ctx, cancel := bounded(ctx)
	defer cancel()
	st, err := r.js.Stream(ctx, StreamName)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", StreamName, err)
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(SnapshotsPrefix+"*"))
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", StreamName, err)
	}
	var names []string
	for subj := range info.State.Subjects {
		if h := hostOfSubject(subj); h != "" {
			names = append(names, h)
		}
	}
	slices.Sort(names)
	return names, nil
}

// Status returns every host with its allocations: now (zero at) from the
// live view and the heartbeats, or at a moment from the stream.
func (r *Reader) Status(ctx context.Context, at ulid.ULID) (ledger.FleetView, error) {
	if !at.IsZero() {
		return r.statusAt(ctx, at)
	}
	allocs, beats, err := r.live(ctx)
	if err != nil {
		return ledger.FleetView{}, err
	}
	hosts := map[string]bool{}
	for h := range allocs {
		hosts[h] = true
	}
	for h := range beats {
		hosts[h] = true
	}
	if names, err := r.hostNames(ctx); err == nil {
		for _, h := range names {
			hosts[h] = true
		}
	}
	st := ledger.FleetView{Hosts: []ledger.FleetHost{}}
	for _, h := range slices.Sorted(mapsKeys(hosts)) {
		hs := ledger.FleetHost{Host: h, Allocations: allocs[h]}
		if hb, ok := beats[h]; ok {
			at := hb.At
			hs.Reachable, hs.LastHeard, hs.LagEvents, hs.LagSeconds, hs.Range = true, &at, hb.LagEvents, hb.LagSeconds, hb.Range
		}
		if hs.Allocations == nil {
			hs.Allocations = []ledger.Allocation{}
		}
		slices.SortFunc(hs.Allocations, func(a, b ledger.Allocation) int { return a.Port - b.Port })
		st.Hosts = append(st.Hosts, hs)
	}
	return st, nil
}

func mapsKeys(m map[string]bool) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// statusAt folds every host's state at a moment (see statesAt).
func (r *Reader) statusAt(ctx context.Context, at ulid.ULID) (ledger.FleetView, error) {
	states, err := r.statesAt(ctx, at)
	if err != nil {
		return ledger.FleetView{}, err
	}
	st := ledger.FleetView{At: ledger.IDTime(at), Hosts: []ledger.FleetHost{}}
	for _, h := range slices.Sorted(maps.Keys(states)) {
		hs := states[h]
		if hs.asOf.IsZero() {
			continue // hosts without events yet are left out
		}
		st.Hosts = append(st.Hosts, ledger.FleetHost{Host: h, AsOf: hs.asOf, Range: hs.reg.Range.String(), Allocations: hs.reg.Allocations()})
	}
	return st, nil
}

// bounds are the stream's first and last sequences.
type bounds struct{ first, last uint64 }

func (r *Reader) streamBounds(ctx context.Context) (bounds, error) {
	ctx, cancel := bounded(ctx)
	defer cancel()
	st, err := r.js.Stream(ctx, StreamName)
	if err != nil {
		return bounds{}, fmt.Errorf("stream %s: %w", StreamName, err)
	}
	info := st.CachedInfo()
	return bounds{info.State.FirstSeq, info.State.LastSeq}, nil
}

// seqAt returns the stream sequence and ID of host's last event with an ID
// at or before at (0 when none). A host's events are on the stream in log
// order, so this is a search over the stream by the events' own IDs; the
// stream's times (the hub's clock, later than the events' when a backlog
// drained) only give it a place to start: every host event stored before
// at's time less clockSkew is at or before at. From there it gallops
// forward (1, 2, 4, ... messages) and then halves, so the cost grows with
// the log of how far the events around the moment are from that start.
func (r *Reader) seqAt(ctx context.Context, b bounds, host string, at ulid.ULID, skip []importRec) (uint64, ulid.ULID, error) {
	subj := HostEvents(host)
	// Imported messages are out of log order: the search steps over them.
	nextFrom := func(ctx context.Context, nc *nats.Conn, subj string, seq uint64) (storedMsg, error) {
		for {
			m, err := nextFrom(ctx, nc, subj, seq)
			if err != nil {
				return m, err
			}
			rec, ok := inImport(skip, m.Seq)
			if !ok {
				return m, nil
			}
			seq = rec.Last + 1
		}
	}
	lo, hi := max(b.first, 1), b.last+1
	var seq uint64
	var id ulid.ULID
	gallop := false
	t := ledger.IDTime(at).Add(-clockSkew)
	m, err := directGet(ctx, r.nc, directRequest{NextFor: subj, StartTime: &t})
	if rec, ok := inImport(skip, m.Seq); err == nil && ok {
		m, err = nextFrom(ctx, r.nc, subj, rec.Last+1)
	}
	if err == nil {
		mid, ok := eventID(m.Header)
		if !ok {
			return 0, ulid.ULID{}, fmt.Errorf("stream message %d has no event ID", m.Seq)
		}
		if mid.Compare(at) > 0 {
			hi = m.Seq // the answer is before the start: halve below it
		} else {
			lo, seq, id, gallop = m.Seq+1, m.Seq, mid, true
		}
	} else if !errors.Is(err, errNoMsg) {
		return 0, ulid.ULID{}, err
	}
	// Search the smallest s in [lo, hi] whose next host event is after at
	// (or absent); the host event just before s is the answer, and it is
	// the last probe that was not after at.
	step := uint64(1)
	for lo < hi {
		probe := lo + (hi-lo)/2
		if gallop {
			probe = min(lo+step-1, hi-1)
		}
		m, err := nextFrom(ctx, r.nc, subj, probe)
		if errors.Is(err, errNoMsg) {
			hi, gallop = probe, false
			continue
		}
		if err != nil {
			return 0, ulid.ULID{}, err
		}
		mid, ok := eventID(m.Header)
		if !ok {
			return 0, ulid.ULID{}, fmt.Errorf("stream message %d has no event ID", m.Seq)
		}
		if mid.Compare(at) > 0 {
			hi, gallop = probe, false
		} else {
			lo, seq, id = m.Seq+1, m.Seq, mid
			step *= 2
		}
	}
	return seq, id, nil
}

// lastSnapshot returns host's last snapshot (nil when none).
func (r *Reader) lastSnapshot(ctx context.Context, host string) (*snap, error) {
	m, err := lastBefore(ctx, r.nc, SnapshotSubject(host), 0)
	if errors.Is(err, errNoMsg) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	s, err := parseSnap(m)
	return &s, err
}

// snapshotFor returns host's registry from its last snapshot at or before
// at (zero: its last one) and the stream sequence of the last event it
// folds (nil, 0 when none).
func (r *Reader) snapshotFor(ctx context.Context, host string, at ulid.ULID, last *snap) (*projection.Registry, uint64, error) {
	best := last
	if !at.IsZero() && last != nil {
		var err error
		if best, _, err = r.snapshotAt(ctx, host, at, nil, last); err != nil {
			return nil, 0, err
		}
	}
	if best == nil {
		return nil, 0, nil
	}
	reg, err := best.registry()
	return reg, best.lastSeq, err
}

// events calls fn for the events on subject from sequence seq on.
func (r *Reader) events(ctx context.Context, subject string, seq uint64, fn func(seq uint64, e ledger.Event) (bool, error)) error {
	return directBatch(ctx, r.nc, subject, seq, 512, func(m storedMsg) (bool, error) {
		e, err := decodeEvent(m)
		if err != nil {
			return false, err
		}
		return fn(m.Seq, e)
	})
}

func decodeEvent(m storedMsg) (ledger.Event, error) {
	var e ledger.Event
	if err := json.Unmarshal(m.Data, &e); err != nil {
		return e, fmt.Errorf("stream message %d: %w", m.Seq, err)
	}
	return e, nil
}

// Who says who held host's port at a moment (zero: now), as the host's own
// `ledger who` does: the holder as it stood then with its release if it
// came later, or, when the port was free, the tenures just before and
// after. ENOTFOUND when the stream knows no such host, EINVALID for a bad
// host or port.
func (r *Reader) Who(ctx context.Context, host string, port int, at ulid.ULID) (ledger.WhoAnswer, error) {
	if err := ValidateHost(host); err != nil {
		return ledger.WhoAnswer{}, err
	}
	if port < 1 || port > 65535 {
		return ledger.WhoAnswer{}, ledger.Errorf(ledger.EINVALID, "port %d: want 1-65535", port)
	}
	ans := ledger.WhoAnswer{Port: port, At: r.now().UTC()}
	b, err := r.streamBounds(ctx)
	if err != nil {
		return ans, err
	}
	last, err := r.lastSnapshot(ctx, host)
	if err != nil {
		return ans, err
	}
	var recs []importRec
	if last != nil {
		recs = last.imports
	}
	var x uint64
	if at.IsZero() {
		m, err := lastBefore(ctx, r.nc, HostEvents(host), 0)
		for err == nil {
			rec, ok := inImport(recs, m.Seq)
			if !ok {
				break
			}
			m, err = lastBefore(ctx, r.nc, HostEvents(host), rec.First-1)
		}
		if errors.Is(err, errNoMsg) {
			return ans, ledger.Errorf(ledger.ENOTFOUND, "the fleet has no events of host %s", host)
		}
		if err != nil {
			return ans, err
		}
		x = m.Seq
		ans.AsOf, _ = eventID(m.Header)
	} else {
		ans.At = ledger.IDTime(at)
	}
	// At a moment, the host's snapshot at or before it and, when the next
	// snapshot lists them, the host's events between the two, got by
	// sequence: they give the host's last event at the moment and the
	// port's events around it without reading the port's subject.
	var best *snap
	var listed []storedMsg
	var listedTo uint64 // the sequence of the last listed event
	if !at.IsZero() && last != nil && len(recs) == 0 {
		var upper *snap
		if best, upper, err = r.snapshotAt(ctx, host, at, nil, last); err != nil {
			return ans, err
		}
		if upper != nil && upper.hasSeqs {
			if listed, err = directGetSeqs(ctx, r.nc, upper.seqs); err != nil {
				return ans, err
			}
			listedTo = upper.lastSeq
		}
	}
	var listedEvents []ledger.Event
	if listed != nil {
		if best != nil {
			x, ans.AsOf = best.lastSeq, best.asOf
		}
		listedEvents = make([]ledger.Event, len(listed))
		for i, m := range listed {
			e, err := decodeEvent(m)
			if err != nil {
				return ans, err
			}
			listedEvents[i] = e
			if e.ID.Compare(at) <= 0 && e.ID.Compare(ans.AsOf) > 0 {
				x, ans.AsOf = m.Seq, e.ID
			}
		}
	} else if !at.IsZero() {
		if x, ans.AsOf, err = r.seqAt(ctx, b, host, at, recs); err != nil {
			return ans, err
		}
	}
	if len(recs) > 0 {
		return r.whoWithImports(ctx, host, port, at, recs, ans)
	}
	subj := EventSubject(host, port)
	if x > 0 {
		// The tenure at the moment: from the host's snapshot before it,
		// when the port was held then, plus the port's events up to it.
		var reg *projection.Registry
		var from uint64
		if listed != nil {
			if best != nil {
				if reg, err = best.registry(); err != nil {
					return ans, err
				}
				from = best.lastSeq
			}
		} else if reg, from, err = r.snapshotFor(ctx, host, at, last); err != nil {
			return ans, err
		}
		var trail []ledger.Event
		onTrail := func(seq uint64, e ledger.Event) (bool, error) {
			if seq > x {
				return false, nil
			}
			if e.Type == ledger.EventAllocated {
				trail, reg = trail[:0], nil // a new tenure: the snapshot's is over
			}
			trail = append(trail, e)
			return true, nil
		}
		if listed != nil {
			for i, m := range listed {
				if e := listedEvents[i]; e.Port == port && m.Seq > from {
					if more, _ := onTrail(m.Seq, e); !more {
						break
					}
				}
			}
		} else if err := r.events(ctx, subj, from+1, onTrail); err != nil {
			return ans, err
		}
		var held *projection.Registry
		switch {
		case reg != nil && reg.Allocs[port] != nil:
			held = reg // the snapshot is inside the tenure
		case len(trail) > 0 && trail[0].Type == ledger.EventAllocated:
		default:
			// Nothing since the snapshot starts a tenure: walk back on the
			// port's subject to its last allocation.
			if trail, err = r.backToAllocation(ctx, subj, x); err != nil {
				return ans, err
			}
		}
		projection.WhoTenure(&ans, held, trail)
	}
	if at.IsZero() {
		return ans, nil
	}
	// Forward from the moment: the holder's release, or the next tenure.
	next := projection.NewWhoNext(&ans)
	forward := func(_ uint64, e ledger.Event) (bool, error) {
		return next.Take(e), nil
	}
	more, from := true, x+1
	if listed != nil {
		for i, m := range listed {
			if e := listedEvents[i]; e.Port == port && m.Seq > x {
				if more, _ = forward(m.Seq, e); !more {
					break
				}
			}
		}
		from = listedTo + 1
	}
	if more {
		if err := r.events(ctx, subj, from, forward); err != nil {
			return ans, err
		}
	}
	next.Finish(&ans)
	return ans, nil
}

// backToAllocation returns the events of subject from its last allocated
// event at or before sequence x up to x, oldest first (none when the port
// was never allocated).
func (r *Reader) backToAllocation(ctx context.Context, subject string, x uint64) ([]ledger.Event, error) {
	var trail []ledger.Event
	for upTo := x; upTo > 0; {
		m, err := lastBefore(ctx, r.nc, subject, upTo)
		if errors.Is(err, errNoMsg) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		e, err := decodeEvent(m)
		if err != nil {
			return nil, err
		}
		trail = append(trail, e)
		if e.Type == ledger.EventAllocated {
			slices.Reverse(trail)
			return trail, nil
		}
		upTo = m.Seq - 1
	}
	return nil, nil
}

// Find says where a service runs now, from the live view.
func (r *Reader) Find(ctx context.Context, service string) ([]ledger.FleetPlacement, error) {
	if strings.TrimSpace(service) == "" {
		return nil, ledger.Errorf(ledger.EINVALID, "which service? give its name")
	}
	allocs, beats, err := r.live(ctx)
	if err != nil {
		return nil, err
	}
	out := []ledger.FleetPlacement{}
	for h, as := range allocs {
		for _, a := range as {
			if a.ServiceName == service {
				_, ok := beats[h]
				out = append(out, ledger.FleetPlacement{Host: h, Reachable: ok, Allocation: a})
			}
		}
	}
	slices.SortFunc(out, func(a, b ledger.FleetPlacement) int {
		if c := strings.Compare(a.Host, b.Host); c != 0 {
			return c
		}
		return a.Allocation.Port - b.Allocation.Port
	})
	return out, nil
}

// History returns the fleet's events that match q, by time. With a
// service, the events of its tenures that start in the window. EINVALID for a
// port without a host, a bad host or Since after Until.
func (r *Reader) History(ctx context.Context, q ledger.FleetHistoryQuery) ([]ledger.FleetEvent, error) {
	subj := EventsPrefix + ">"
	switch {
	case q.Port != 0 && q.Host == "":
		return nil, ledger.Errorf(ledger.EINVALID, "a port needs its host: give --host")
	case q.Port < 0 || q.Port > 65535:
		return nil, ledger.Errorf(ledger.EINVALID, "port %d: want 1-65535", q.Port)
	case !q.Since.IsZero() && !q.Until.IsZero() && q.Since.Compare(q.Until) > 0:
		return nil, ledger.Errorf(ledger.EINVALID, "since is after until")
	case q.Host != "" && q.Port != 0:
		subj = EventSubject(q.Host, q.Port)
	case q.Host != "":
		subj = HostEvents(q.Host)
	}
	if q.Host != "" {
		if err := ValidateHost(q.Host); err != nil {
			return nil, err
		}
	}
	limit := q.Limit
	if limit <= 0 {
		limit = ledger.DefaultFleetHistoryLimit
	}
	out := []ledger.FleetEvent{}
	tenures := map[string]string{} // host.port -> the service that holds it, as far as the window shows
	err := r.scanWindow(ctx, subj, q.Since, q.Until, func(m storedMsg, e ledger.Event) (bool, error) {
		if q.Service != "" {
			key := m.Subject
			if e.Type == ledger.EventAllocated {
				tenures[key] = e.Allocated.ServiceName
			}
			svc := tenures[key]
			if e.Type == ledger.EventReleased {
				delete(tenures, key)
			}
			if svc != q.Service {
				return true, nil
			}
		}
		out = append(out, ledger.FleetEvent{Host: hostOfSubject(m.Subject), Event: e})
		return len(out) < limit, nil
	})
	slices.SortStableFunc(out, func(a, b ledger.FleetEvent) int { return a.Event.At.Compare(b.Event.At) })
	return out, err
}

// scanWindow calls fn for the events on subject with since <= ID <= until,
// in stream order. It starts on the stream at since's time less clockSkew,
// and stops once the stream's own time is past until and clockSkew.
func (r *Reader) scanWindow(ctx context.Context, subject string, since, until ulid.ULID, fn func(storedMsg, ledger.Event) (bool, error)) error {
	req := directRequest{NextFor: subject, Batch: 512}
	if !since.IsZero() {
		t := ledger.IDTime(since).Add(-clockSkew)
		req.StartTime = &t
	} else {
		req.Seq = 1
	}
	var stopAt time.Time
	if !until.IsZero() {
		stopAt = ledger.IDTime(until).Add(clockSkew)
	}
	return directBatchReq(ctx, r.nc, req, func(m storedMsg) (bool, error) {
		if !stopAt.IsZero() && m.Time.After(stopAt) {
			return false, nil
		}
		id, ok := eventID(m.Header)
		if !ok || (!since.IsZero() && id.Compare(since) < 0) || (!until.IsZero() && id.Compare(until) > 0) {
			return true, nil
		}
		e, err := decodeEvent(m)
		if err != nil {
			return false, err
		}
		return fn(m, e)
	})
}

// Usage reports, per host and service, how ports were used over a window.
// EINVALID when Since is after Until.
func (r *Reader) Usage(ctx context.Context, q ledger.UsageQuery) ([]ledger.FleetUsage, error) {
	if !q.Since.IsZero() && !q.Until.IsZero() && q.Since.Compare(q.Until) > 0 {
		return nil, ledger.Errorf(ledger.EINVALID, "since is after until")
	}
	end := r.now().UTC()
	if !q.Until.IsZero() {
		end = ledger.IDTime(q.Until)
	}
	folds := map[string]*projection.Usage{}
	if !q.Since.IsZero() {
		states, err := r.statesAt(ctx, prevID(q.Since))
		if err != nil {
			return nil, err
		}
		for h, st := range states {
			folds[h] = projection.NewUsage(st.reg, ledger.IDTime(q.Since))
		}
	}
	err := r.scanWindow(ctx, EventsPrefix+">", q.Since, q.Until, func(m storedMsg, e ledger.Event) (bool, error) {
		h := hostOfSubject(m.Subject)
		if folds[h] == nil {
			folds[h] = projection.NewUsage(nil, ledger.IDTime(q.Since))
		}
		folds[h].Apply(e)
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	out := []ledger.FleetUsage{}
	for _, h := range slices.Sorted(func(yield func(string) bool) {
		for k := range folds {
			if !yield(k) {
				return
			}
		}
	}) {
		if svcs := folds[h].Result(end, q.Service); len(svcs) > 0 {
			out = append(out, ledger.FleetUsage{Host: h, Services: svcs})
		}
	}
	return out, nil
}

// prevID returns the ULID just before id.
func prevID(id ulid.ULID) ulid.ULID {
	for i := 15; i >= 0; i-- {
		id[i]--
		if id[i] != 0xff {
			break
		}
	}
	return id
}
