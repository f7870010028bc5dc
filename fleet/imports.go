package fleet

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/oklog/ulid/v2"
	"github.com/portledger/portledger/ledger"
	"github.com/portledger/portledger/projection"
)

// Events imported into the past of a ledger (ledger import, which inserts
// events with their original IDs) land behind the publishing cursor. The
// publisher counts the events up to its cursor that are on the stream and
// keeps that count in the ledger next to the cursor (CountName); when the
// log holds more events up to the cursor than that, whether the import ran
// through the daemon or while it was stopped, it reads which of the host's
// events the stream has, publishes the others in ID order (the message ID
// <host>.<ULID> keeps it exactly once), folds its registry again and sends
// a snapshot that records the import: its earliest event, the cursor then
// and the stream sequences of the imported messages (HeaderImports, carried
// on every later snapshot). Readers use that record to leave the imported
// messages out of their searches by log order and to fold them by ID.

// CountName is the name, in the ledger's meta bucket, of the number of
// events up to the cursor that are on the stream (kept as a ULID's last 8
// bytes, big-endian: ledger.Log.Position stores IDs).
const CountName = PositionName + ".count"

// HeaderImports is, on a snapshot, the host's imports so far:
// "<earliest ULID>:<cursor ULID>:<first seq>-<last seq>", comma separated.
const HeaderImports = "Portledger-Imports"

// importRec records one publishing of imported events.
type importRec struct {
	Earliest    ulid.ULID // the earliest imported event
	Cursor      ulid.ULID // the publisher's cursor then: every imported event is before it
	First, Last uint64    // the stream sequences of the imported messages (the host's only ones between)
}

func (r importRec) has(seq uint64) bool { return r.First <= seq && seq <= r.Last }

func formatImports(recs []importRec) string {
	var b strings.Builder
	for i, r := range recs {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%s:%s:%d-%d", r.Earliest, r.Cursor, r.First, r.Last)
	}
	return b.String()
}

func parseImports(v string) ([]importRec, error) {
	if v == "" {
		return nil, nil
	}
	var out []importRec
	for _, f := range strings.Split(v, ",") {
		parts := strings.Split(f, ":")
		if len(parts) != 3 {
			return nil, fmt.Errorf("bad import record %q", f)
		}
		a, b, ok := strings.Cut(parts[2], "-")
		if !ok {
			return nil, fmt.Errorf("bad import record %q", f)
		}
		var r importRec
		var e [4]error
		r.Earliest, e[0] = ulid.ParseStrict(parts[0])
		r.Cursor, e[1] = ulid.ParseStrict(parts[1])
		r.First, e[2] = strconv.ParseUint(a, 10, 64)
		r.Last, e[3] = strconv.ParseUint(b, 10, 64)
		if err := errors.Join(e[:]...); err != nil {
			return nil, fmt.Errorf("bad import record %q: %w", f, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// inImport returns the record whose imported messages include seq.
func inImport(recs []importRec, seq uint64) (importRec, bool) {
	for _, r := range recs {
		if r.has(seq) {
			return r, true
		}
	}
	return importRec{}, false
}

func countID(n uint64) ulid.ULID {
	var id ulid.ULID
	binary.BigEndian.PutUint64(id[8:], n)
	return id
}

func idCount(id ulid.ULID) uint64 { return binary.BigEndian.Uint64(id[8:]) }

// checkImports counts the events up to the cursor that are not on the
// stream yet: what an import inserted behind the cursor.
func (p *Publisher) checkImports() error {
	p.mu.Lock()
	cur, acked := p.cursor, p.acked
	p.mu.Unlock()
	total, err := p.cfg.Log.Count()
	if err != nil {
		return err
	}
	var after uint64
	if err := p.cfg.Log.Scan(cur, ulid.Zero, func(ledger.Event) error { after++; return nil }); err != nil {
		return err
	}
	if total > after+acked {
		p.mu.Lock()
		if p.cursor == cur {
			p.pending = total - after - acked
		}
		p.mu.Unlock()
	}
	return nil
}

// eventIDOnly decodes the ID of an event's JSON.
type eventIDOnly struct {
	ID ulid.ULID `json:"id"`
}

// publishImports publishes the events up to the cursor that the stream
// does not have, in ID order, then folds the registry again and sends a
// snapshot that records every import of the host. The records are read off
// the stream itself (see hostOnStream), so a publisher stopped between
// publishing imported events and the snapshot that records them records
// them on its next pass; the count in the ledger moves only after that
// snapshot.
func (p *Publisher) publishImports(ctx context.Context, nc *nats.Conn, js jetstream.JetStream) error {
	p.mu.Lock()
	cur := p.cursor
	p.mu.Unlock()
	have, recs, curSeq, err := hostOnStream(ctx, nc, p.cfg.Host, cur)
	if err != nil {
		return fmt.Errorf("imports: %w", err)
	}
	// Events older than the stream keeps are not sent again.
	var oldest ulid.ULID
	if st, err := js.Stream(ctx, StreamName); err == nil {
		if age := st.CachedInfo().Config.MaxAge; age > 0 {
			oldest = ledger.UntilID(p.cfg.Now().Add(-age))
		}
	}
	var missing []ledger.Event
	err = p.cfg.Log.Scan(ulid.Zero, cur, func(e ledger.Event) error {
		if !have[e.ID] && e.ID.Compare(oldest) > 0 {
			missing = append(missing, e)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(missing) > 0 {
		futures := make([]jetstream.PubAckFuture, 0, len(missing))
		for _, e := range missing {
			m, err := p.eventMsg(e)
			if err != nil {
				return err
			}
			f, err := js.PublishMsgAsync(m, jetstream.WithRetryAttempts(0))
			if err != nil {
				return fmt.Errorf("imports: publish: %w", err)
			}
			futures = append(futures, f)
		}
		seqs, err := p.waitAcks(ctx, futures)
		if err != nil {
			return fmt.Errorf("imports: %w", err)
		}
		recs = append(recs, importRec{Earliest: missing[0].ID, Cursor: cur, First: slices.Min(seqs), Last: slices.Max(seqs)})
		p.log.Info("fleet: published events imported into the past", "events", len(missing), "earliest", missing[0].ID)
	}
	if len(recs) > 0 && curSeq > 0 {
		reg, err := projection.StateAt(p.cfg.Log, cur)
		if err != nil {
			return fmt.Errorf("imports: the registry at the cursor: %w", err)
		}
		data, err := reg.MarshalSnapshot()
		if err != nil {
			return err
		}
		p.mu.Lock()
		p.imports = recs
		seqs, seqsOK := p.sinceSeqs, p.seqsOK
		p.mu.Unlock()
		if err := p.publishSnapshot(ctx, js, pendingSnap{data: data, asOf: cur, seq: curSeq, seqs: seqs, seqsOK: seqsOK}); err != nil {
			return err
		}
		p.mu.Lock()
		p.sinceSnap, p.sinceSeqs, p.seqsOK = 0, nil, true
		p.mu.Unlock()
	}
	p.mu.Lock()
	p.pending = 0
	p.mu.Unlock()
	if err := p.setCursor(cur); err != nil {
		return err
	}
	p.mu.Lock()
	p.cursorSeq = curSeq
	p.mu.Unlock()
	p.saveCursor(true)
	return nil
}

// hostOnStream reads every event message of host on the stream: the IDs it
// has, its imports (each a run of messages behind the host's newest event
// before them: the host's own events are on the stream in log order, so
// only imported ones are), and the sequence of the event cur.
func hostOnStream(ctx context.Context, nc *nats.Conn, host string, cur ulid.ULID) (map[ulid.ULID]bool, []importRec, uint64, error) {
	have := map[ulid.ULID]bool{}
	var recs []importRec
	var newest ulid.ULID
	var curSeq uint64
	var run *importRec
	err := directBatch(ctx, nc, HostEvents(host), 1, 1024, func(m storedMsg) (bool, error) {
		var e eventIDOnly
		if err := json.Unmarshal(m.Data, &e); err != nil {
			return false, fmt.Errorf("an event of %s on the stream: %w", host, err)
		}
		have[e.ID] = true
		if e.ID == cur {
			curSeq = m.Seq
		}
		if e.ID.Compare(newest) > 0 {
			newest, run = e.ID, nil
			return true, nil
		}
		if run == nil {
			recs = append(recs, importRec{Earliest: e.ID, Cursor: newest, First: m.Seq})
			run = &recs[len(recs)-1]
		}
		run.Last = m.Seq
		if e.ID.Compare(run.Earliest) < 0 {
			run.Earliest = e.ID
		}
		return true, nil
	})
	return have, recs, curSeq, err
}

// waitAcks waits for every acknowledgement and returns the sequences.
func (p *Publisher) waitAcks(ctx context.Context, futures []jetstream.PubAckFuture) ([]uint64, error) {
	timeout := time.NewTimer(p.cfg.AckTimeout)
	defer timeout.Stop()
	seqs := make([]uint64, len(futures))
	for i, f := range futures {
		select {
		case ack := <-f.Ok():
			seqs[i] = ack.Sequence
		case err := <-f.Err():
			return nil, fmt.Errorf("publish: %w", err)
		case <-timeout.C:
			return nil, fmt.Errorf("publish: no acknowledgement in %s", p.cfg.AckTimeout)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return seqs, nil
}

// Readers.

// importedEvents returns host's imported events (every record's) with an
// ID in (after, upTo], or all with zero bounds.
func (r *Reader) importedEvents(ctx context.Context, host string, recs []importRec, after, upTo ulid.ULID) ([]ledger.Event, error) {
	var out []ledger.Event
	for _, rec := range recs {
		err := r.events(ctx, HostEvents(host), rec.First, func(seq uint64, e ledger.Event) (bool, error) {
			if seq > rec.Last {
				return false, nil
			}
			if e.ID.Compare(after) > 0 && (upTo.IsZero() || e.ID.Compare(upTo) <= 0) {
				out = append(out, e)
			}
			return true, nil
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// hostAtWithImports folds host's registry at a moment when imported
// events published after its snapshots change it: from the last snapshot
// before the earliest such import, the host's own events in log order up to
// the moment (leaving the imported messages out) and the imported events up
// to the moment, merged by ID.
func (r *Reader) hostAtWithImports(ctx context.Context, host string, at ulid.ULID, recs []importRec, earliest ulid.ULID, last *snap) (hostState, error) {
	base, _, err := r.snapshotAt(ctx, host, prevID(earliest), nil, last)
	if err != nil {
		return hostState{}, err
	}
	st := hostState{reg: projection.NewRegistry()}
	var from uint64
	if base != nil {
		if st.reg, err = base.registry(); err != nil {
			return hostState{}, err
		}
		st.asOf, from = base.asOf, base.lastSeq
	}
	evs, err := r.importedEvents(ctx, host, recs, st.asOf, at)
	if err != nil {
		return hostState{}, err
	}
	err = r.events(ctx, HostEvents(host), from+1, func(seq uint64, e ledger.Event) (bool, error) {
		if _, ok := inImport(recs, seq); ok {
			return true, nil
		}
		if e.ID.Compare(at) > 0 {
			return false, nil
		}
		evs = append(evs, e)
		return true, nil
	})
	if err != nil {
		return hostState{}, err
	}
	slices.SortFunc(evs, func(a, b ledger.Event) int { return a.ID.Compare(b.ID) })
	for _, e := range evs {
		st.reg.Apply(e)
		st.asOf = e.ID
	}
	return st, nil
}

// whoWithImports answers Who for a host with imports: the port's events,
// its own and imported, read whole and put in ID order, and the host's last
// event at or before the moment.
func (r *Reader) whoWithImports(ctx context.Context, host string, port int, at ulid.ULID, recs []importRec, ans ledger.WhoAnswer) (ledger.WhoAnswer, error) {
	var evs []ledger.Event
	if err := r.events(ctx, EventSubject(host, port), 1, func(_ uint64, e ledger.Event) (bool, error) {
		evs = append(evs, e)
		return true, nil
	}); err != nil {
		return ans, err
	}
	slices.SortFunc(evs, func(a, b ledger.Event) int { return a.ID.Compare(b.ID) })
	// The host's last event then: its own (searched in log order, the
	// imported messages left out) or an imported one.
	imported, err := r.importedEvents(ctx, host, recs, ulid.Zero, at)
	if err != nil {
		return ans, err
	}
	for _, e := range imported {
		if e.ID.Compare(ans.AsOf) > 0 {
			ans.AsOf = e.ID
		}
	}
	if at.IsZero() {
		at = ans.AsOf
	}
	i := len(evs) // the port's events at or before at are evs[:i]
	for i > 0 && evs[i-1].ID.Compare(at) > 0 {
		i--
	}
	j := i // the tenure at the moment starts at its allocation
	for j > 0 && evs[j-1].Type != ledger.EventAllocated {
		j--
	}
	if j > 0 {
		projection.WhoTenure(&ans, nil, evs[j-1:i])
	}
	next := projection.NewWhoNext(&ans)
	for _, e := range evs[i:] {
		if !next.Take(e) {
			break
		}
	}
	next.Finish(&ans)
	return ans, nil
}
