package ledger

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"slices"

	"github.com/oklog/ulid/v2"
	bolt "go.etcd.io/bbolt"
)

// The hash chain.
//
// Every event commits to the one written before it, in commit order: its
// link is
//
//	link(n) = SHA-256(link(n-1) || n as 8 bytes || ID || encoded event)[:16]
//
// where n is the event's position in the chain (1 for the first event ever
// written) and link(0) is sixteen zero bytes. The link and n are kept after
// the encoded event in the events bucket (the chain trailer: n as 6 bytes,
// then the link, 22 bytes in all; the port index's copies do not carry it),
// and a flag bit in the event's header says the trailer is there. The newest
// link is the chain head, kept in meta with n and its event's ID, and with
// every snapshot.
//
// Commit order and ID order are the same for the events that Append writes,
// since an appended ID is above every ID in the log. Imported events
// (Insert) land in the past, so their IDs sit among older events while their
// links come after the newest event of the moment; Insert chains them in ID
// order within the import. The verifier therefore walks the appended events
// in ID order and the inserted ones in link order, merged by n.
//
// Why 16 bytes: an attacker who wants an altered event to keep its link needs about 2^128 tries (a
// second preimage) and two events with the same link need about 2^64 (a
// collision, which helps only someone who writes both events): either is far
// beyond reach, and the 16 bytes saved against the full hash keep the chain
// within its disk budget.
//
// A file written before the chain has events without a trailer. The first
// writable Open of such a file chains them where they are: it folds them, in
// ID order, into the links 1..N without storing those links, and keeps the
// resulting link, with N and the last event's ID, as the chain's base in
// meta. The verifier folds them again and compares with the base; a change to
// one of them is caught but not located more precisely than "before the
// upgrade".

const (
	flagChained  = 1 << 7 // in the header's flags byte: the chain trailer follows the event
	flagInserted = 1 << 6 // in the header's flags byte: written by Insert, so not in ID order in the chain
	seqBytes     = 6      // the chain position in the trailer, big-endian (2^48 events)
	linkBytes    = 16
	trailerLen   = seqBytes + linkBytes
	headLen      = 8 + 16 + linkBytes // seq, ID, link
	snapMarker   = 0x00               // first byte of a snapshot value that starts with its chain head
)

var (
	keyChainHead     = []byte("chain_head")     // headLen bytes: the newest link
	keyChainBase     = []byte("chain_base")     // headLen bytes: the link after the events written before the chain
	keyChainAccepted = []byte("chain_accepted") // 16-byte IDs: breaks acknowledged with --accept-broken-chain
)

// ChainLink is one link of the hash chain: the first 16 bytes of a SHA-256.
// It renders as 32 hex digits.
type ChainLink [linkBytes]byte

// String returns the link in hex.
func (c ChainLink) String() string { return hex.EncodeToString(c[:]) }

// MarshalText renders the link in hex.
func (c ChainLink) MarshalText() ([]byte, error) { return []byte(c.String()), nil }

// UnmarshalText reads a link in hex.
func (c *ChainLink) UnmarshalText(b []byte) error {
	if hex.DecodedLen(len(b)) != linkBytes {
		return fmt.Errorf("chain link %q: want %d hex digits", b, 2*linkBytes)
	}
	_, err := hex.Decode(c[:], b)
	return err
}

// ChainHead is the newest link of the log's hash chain: what a copy of the
// log elsewhere (the fleet) compares to know that this log was not rewritten.
type ChainHead struct {
	// Seq is the number of events in the chain (0: empty log).
	Seq uint64 `json:"seq"`
	// ID is the event whose link Link is.
	ID ulid.ULID `json:"event_id,omitzero"`
	// Link is the newest link.
	Link ChainLink `json:"link"`
}

func (h ChainHead) bytes() []byte {
	b := binary.BigEndian.AppendUint64(make([]byte, 0, headLen), h.Seq)
	b = append(b, h.ID[:]...)
	return append(b, h.Link[:]...)
}

func parseHead(b []byte) (ChainHead, bool) {
	var h ChainHead
	if len(b) != headLen {
		return h, false
	}
	h.Seq = binary.BigEndian.Uint64(b)
	copy(h.ID[:], b[8:24])
	copy(h.Link[:], b[24:])
	return h, true
}

// chainLink computes link(seq) from the link before it.
func chainLink(prev ChainLink, seq uint64, id ulid.ULID, body []byte) ChainLink {
	h := sha256.New()
	var head [linkBytes + 8 + 16]byte
	copy(head[:], prev[:])
	binary.BigEndian.PutUint64(head[linkBytes:], seq)
	copy(head[linkBytes+8:], id[:])
	h.Write(head[:])
	h.Write(body)
	var sum [sha256.Size]byte
	var out ChainLink
	copy(out[:], h.Sum(sum[:0]))
	return out
}

// chainEvent marks body (an encoded event) as chained, links it after prev
// and returns the value to store in the events bucket and the new head.
func chainEvent(prev ChainHead, id ulid.ULID, body []byte) ([]byte, ChainHead) {
	body[2] |= flagChained
	next := ChainHead{Seq: prev.Seq + 1, ID: id}
	next.Link = chainLink(prev.Link, next.Seq, id, body)
	v := make([]byte, len(body), len(body)+trailerLen)
	copy(v, body)
	var seq [8]byte
	binary.BigEndian.PutUint64(seq[:], next.Seq)
	v = append(v, seq[8-seqBytes:]...)
	return append(v, next.Link[:]...), next
}

// splitChained returns the encoded event of a stored value, and its chain
// position and link when it carries a trailer.
func splitChained(v []byte) (body []byte, seq uint64, link ChainLink, chained bool) {
	if len(v) < 3+trailerLen || v[2]&flagChained == 0 {
		return v, 0, link, false
	}
	n := len(v) - trailerLen
	var s [8]byte
	copy(s[8-seqBytes:], v[n:n+seqBytes])
	copy(link[:], v[n+seqBytes:])
	return v[:n], binary.BigEndian.Uint64(s[:]), link, true
}

// ChainHead returns the newest link of the hash chain. The fleet publishes
// it; `ledger status` shows it.
func (l *Log) ChainHead() ChainHead {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.head
}

// loadChain reads the chain head inside Open's transaction, chaining the
// events of a file written before the chain when tx is writable.
func (l *Log) loadChain(tx *bolt.Tx) error {
	meta := tx.Bucket(bucketMeta)
	if h, ok := parseHead(meta.Get(keyChainHead)); ok {
		l.head = h
		return nil
	}
	c := eventsCursor(tx)
	if k, _ := c.First(); k == nil || !tx.Writable() {
		return nil // a new log, or an old file opened read-only: unchained
	}
	var h ChainHead
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if _, _, _, chained := splitChained(v); chained {
			return fmt.Errorf("%w: event %s is chained but meta has no chain head", ErrCorrupt, ulid.ULID(k))
		}
		h.Seq++
		h.ID = ulid.ULID(k)
		h.Link = chainLink(h.Link, h.Seq, h.ID, v)
	}
	if err := meta.Put(keyChainBase, h.bytes()); err != nil {
		return err
	}
	if err := meta.Put(keyChainHead, h.bytes()); err != nil {
		return err
	}
	// The newest snapshot marks the upgrade, so that the daemon's start
	// check begins at the base rather than walking the whole file.
	snaps := tx.Bucket(bucketSnapshots)
	if k, v := snaps.Cursor().Last(); k != nil {
		if _, _, ok := splitSnapshot(v); !ok {
			if err := snaps.Put(bytes.Clone(k), snapshotValue(h, bytes.Clone(v))); err != nil {
				return err
			}
		}
	}
	l.head = h
	return nil
}

// snapshotValue prefixes a snapshot with the chain head it was taken at.
func snapshotValue(h ChainHead, data []byte) []byte {
	v := make([]byte, 0, 1+headLen+len(data))
	v = append(v, snapMarker)
	v = append(v, h.bytes()...)
	return append(v, data...)
}

// splitSnapshot returns a stored snapshot's data and, when it has one, the
// chain head it was taken at. Snapshots written before the chain start with
// their JSON.
func splitSnapshot(v []byte) (data []byte, head ChainHead, ok bool) {
	if len(v) >= 1+headLen && v[0] == snapMarker {
		head, ok = parseHead(v[1 : 1+headLen])
		return v[1+headLen:], head, ok
	}
	return v, head, false
}

// ChainBreak is a link of the chain that does not hold.
type ChainBreak struct {
	// EventID is the event whose link does not hold; zero when the log
	// ends before its chain head (events were removed at the end).
	EventID ulid.ULID `json:"event_id,omitzero"`
	// Seq is the position in the chain where the break was found.
	Seq uint64 `json:"seq"`
	// Problem says what is wrong.
	Problem string `json:"problem"`
}

// ChainReport is what VerifyChain found.
type ChainReport struct {
	// From is the chain position the walk started after (0: the whole
	// log); Checked is how many links it checked.
	From    uint64 `json:"from"`
	Checked uint64 `json:"checked"`
	// Head is the chain head in meta.
	Head ChainHead `json:"head"`
	// Unchained is the number of events written before the chain began,
	// folded into its base at the upgrade.
	Unchained uint64 `json:"unchained,omitempty"`
	// Break is the first link that does not hold and was not accepted; nil
	// when the chain holds.
	Break *ChainBreak `json:"break,omitempty"`
	// Accepted lists the breaks found that an operator accepted earlier
	// (`ledger serve --accept-broken-chain`); the walk went on past them.
	Accepted []ChainBreak `json:"accepted,omitempty"`
	// Breaks lists every break found when the walk was asked to go on past
	// them (the daemon's acceptance); otherwise at most Break.
	Breaks []ChainBreak `json:"-"`
	// End is where the walk ended: the last link it found in the log.
	End ChainHead `json:"-"`
	// SnapshotsChecked is how many snapshots were compared with a fold of
	// the events they cover; Snapshot is the first that did not match
	// (nil: none, or they were not checked). The chain covers the events,
	// not the snapshots, which are a copy of their fold: a snapshot edited
	// in the file is caught here.
	SnapshotsChecked int            `json:"snapshots_checked,omitempty"`
	Snapshot         *SnapshotBreak `json:"snapshot_break,omitempty"`
}

// SnapshotBreak is a snapshot that does not match the events it covers.
type SnapshotBreak struct {
	ID      ulid.ULID `json:"id"` // the last event the snapshot covers
	Problem string    `json:"problem"`
}

// OK reports whether the chain holds, accepted breaks aside, and no
// snapshot checked disagrees with the events.
func (r ChainReport) OK() bool { return r.Break == nil && r.Snapshot == nil }

// VerifyChain walks the whole hash chain, from the first event, and
// reports the first link that does not hold. It reads the whole log in one
// read transaction. An error is returned only when the log cannot be read.
func (l *Log) VerifyChain() (ChainReport, error) {
	var r ChainReport
	err := l.db.View(func(tx *bolt.Tx) error {
		var err error
		r, err = verifyChain(tx, false, false)
		return err
	})
	return r, err
}

// VerifyChainSinceSnapshot checks the links written after the newest
// snapshot that carries a chain head, and that snapshot's link: the check
// the daemon makes at start, whose cost is one pass over the events after
// that snapshot. With no such snapshot it walks the whole chain, as
// VerifyChain does.
func (l *Log) VerifyChainSinceSnapshot() (ChainReport, error) {
	var r ChainReport
	err := l.db.View(func(tx *bolt.Tx) error {
		var err error
		r, err = verifyChain(tx, true, false)
		return err
	})
	return r, err
}

// AcceptBrokenChain walks the whole chain, records every break it finds as
// accepted (so that later walks go on past them), moves the chain head to
// the last link actually in the log, and appends one event of type
// EventChainAccepted that says so, all in one transaction. It is what
// `ledger serve --accept-broken-chain` does. It returns the report of the
// walk and the event; with no break it writes nothing and returns a zero
// event.
func (l *Log) AcceptBrokenChain(by string) (ChainReport, Event, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var r ChainReport
	var ev Event
	err := l.db.Update(func(tx *bolt.Tx) error {
		var err error
		if r, err = verifyChain(tx, false, true); err != nil {
			return err
		}
		// The start check also compares the newest snapshot's head with
		// its event: accept what it finds too, or the next start would
		// refuse again.
		fromSnap, err := verifyChain(tx, true, true)
		if err != nil {
			return err
		}
		for _, b := range fromSnap.Breaks {
			if !slices.ContainsFunc(r.Breaks, func(x ChainBreak) bool { return x.EventID == b.EventID }) {
				r.Breaks = append(r.Breaks, b)
			}
		}
		if len(r.Breaks) == 0 {
			return nil
		}
		meta := tx.Bucket(bucketMeta)
		acc := bytes.Clone(meta.Get(keyChainAccepted))
		for _, b := range r.Breaks {
			acc = append(acc, b.EventID[:]...)
		}
		if err := meta.Put(keyChainAccepted, acc); err != nil {
			return err
		}
		first := r.Breaks[0]
		ev = Event{Type: EventChainAccepted, ChainAccepted: &ChainAccepted{
			Breaks: len(r.Breaks), EventID: first.EventID, Seq: first.Seq, Problem: first.Problem, AcceptedBy: by,
		}}
		id, err := l.nextID(l.last, l.now())
		if err != nil {
			return err
		}
		ev.ID, ev.At = id, IDTime(id)
		body, err := AppendEncoded(nil, &ev)
		if err != nil {
			return err
		}
		v, head := chainEvent(r.End, id, body)
		mark, _ := indexMark(tx)
		if err := eventsFor(tx, mark, id).Put(id[:], v); err != nil {
			return err
		}
		if err := meta.Put(keyCount, binary.BigEndian.AppendUint64(nil, countOf(meta)+1)); err != nil {
			return err
		}
		if err := meta.Put(keyChainHead, head.bytes()); err != nil {
			return err
		}
		l.head, l.last = head, id
		return nil
	})
	if err != nil {
		return r, Event{}, fmt.Errorf("accept broken chain: %w", err)
	}
	return r, ev, nil
}

// chainEntry is a chained event found by the first pass of a walk.
type chainEntry struct {
	seq uint64
	id  ulid.ULID
}

// verifyChain walks the chain in tx. Since a snapshot (sinceSnap), it
// starts after the newest snapshot with a chain head and checks that
// snapshot's link. With all, it goes on past every break, resynchronising
// on the stored link, and lists them in Breaks.
func verifyChain(tx *bolt.Tx, sinceSnap, all bool) (ChainReport, error) {
	var r ChainReport
	meta := tx.Bucket(bucketMeta)
	head, hasHead := parseHead(meta.Get(keyChainHead))
	r.Head = head
	base, hasBase := parseHead(meta.Get(keyChainBase))
	accepted := map[ulid.ULID]bool{}
	if acc := meta.Get(keyChainAccepted); len(acc)%16 == 0 {
		for i := 0; i < len(acc); i += 16 {
			accepted[ulid.ULID(acc[i:i+16])] = true
		}
	}
	stop := false
	// fail records a break; it returns true when the walk must stop.
	fail := func(b ChainBreak) bool {
		if accepted[b.EventID] {
			r.Accepted = append(r.Accepted, b)
			return false
		}
		r.Breaks = append(r.Breaks, b)
		if r.Break == nil {
			r.Break = &r.Breaks[0]
		}
		stop = !all
		return stop
	}
	if !hasHead {
		if k, _ := eventsCursor(tx).First(); k == nil {
			return r, nil
		}
		if tx.Writable() || !sinceSnap {
			// A read-only look at a file written before the chain.
			fail(ChainBreak{Problem: "the log has no hash chain (written before it; open it writable once to chain it)"})
		}
		return r, nil
	}

	// Where to start: the genesis, or a snapshot's head.
	var start ChainHead
	var after ulid.ULID
	if sinceSnap {
		c := tx.Bucket(bucketSnapshots).Cursor()
		for k, v := c.Last(); k != nil; k, v = c.Prev() {
			if _, h, ok := splitSnapshot(v); ok {
				start, after = h, ulid.ULID(k)
				break
			}
		}
		switch {
		case start.Seq == 0:
		case hasBase && start == base:
			// The snapshot marks the upgrade: start at the base, whose
			// events a full walk checks.
		case start.Seq <= base.Seq:
			start, after = ChainHead{}, ulid.Zero
		default:
			// The snapshot's own link must be the one stored with its event.
			v := getEvent(tx, start.ID[:])
			_, seq, link, chained := splitChained(v)
			if v == nil || !chained || seq != start.Seq || link != start.Link {
				b := ChainBreak{EventID: start.ID, Seq: start.Seq, Problem: "the snapshot's chain head does not match the event it names"}
				if v == nil {
					b.Problem = "the snapshot's chain head names an event that is not in the log"
				}
				if fail(b) {
					return r, nil
				}
				// The snapshot's head cannot be trusted: walk it all.
				start, after = ChainHead{}, ulid.Zero
			}
		}
	}
	r.From = start.Seq
	fromBase := start.Seq == 0
	if fromBase && hasBase {
		start = base
	}

	// Pass 1: the events written before the chain (against the base), and
	// the positions of inserted events, which are not in ID order.
	var inserted []chainEntry
	var unchained ChainHead
	c := eventsCursor(tx)
	first := func() ([]byte, []byte) {
		if after.IsZero() {
			return c.First()
		}
		k, v := c.Seek(after[:])
		if k != nil && bytes.Equal(k, after[:]) {
			return c.Next()
		}
		return k, v
	}
	for k, v := first(); k != nil; k, v = c.Next() {
		_, seq, _, chained := splitChained(v)
		switch {
		case !chained:
			if fromBase {
				unchained.Seq++
				unchained.ID = ulid.ULID(k)
				unchained.Link = chainLink(unchained.Link, unchained.Seq, unchained.ID, v)
			}
		case v[2]&flagInserted != 0 && seq > start.Seq:
			inserted = append(inserted, chainEntry{seq: seq, id: ulid.ULID(k)})
		}
	}
	r.Unchained = unchained.Seq
	if fromBase && unchained != base {
		b := ChainBreak{EventID: base.ID, Seq: base.Seq,
			Problem: fmt.Sprintf("the %d events written before the chain began no longer hash to its base (%d events now): one of them was changed, removed or added", base.Seq, unchained.Seq)}
		if fail(b) {
			return r, nil
		}
	}
	slices.SortFunc(inserted, func(a, b chainEntry) int {
		return cmp.Or(cmp.Compare(a.seq, b.seq), a.id.Compare(b.id))
	})

	// Pass 2: the links in chain order, merging the appended events (in ID
	// order) with the inserted ones (in link order).
	prev := start
	check := func(id ulid.ULID, v []byte) bool {
		body, seq, link, _ := splitChained(v)
		want := prev.Seq + 1
		switch {
		case seq > want:
			if fail(ChainBreak{EventID: id, Seq: want, Problem: fmt.Sprintf("links %d-%d are missing before this event (its link is %d): events were removed or reordered", want, seq-1, seq)}) {
				return true
			}
		case seq < want:
			if fail(ChainBreak{EventID: id, Seq: want, Problem: fmt.Sprintf("this event's link is %d, but link %d was expected: events were reordered or copied", seq, want)}) {
				return true
			}
		case chainLink(prev.Link, seq, id, body) != link:
			if fail(ChainBreak{EventID: id, Seq: seq, Problem: "the event or the link before it was changed: its link does not match its content"}) {
				return true
			}
		}
		r.Checked++
		prev = ChainHead{Seq: seq, ID: id, Link: link}
		return false
	}
	k, v := first()
	next := func() {
		for k, v = c.Next(); k != nil; k, v = c.Next() {
			if _, seq, _, chained := splitChained(v); chained && v[2]&flagInserted == 0 && seq > start.Seq {
				return
			}
		}
	}
	if k != nil {
		if _, seq, _, chained := splitChained(v); !chained || v[2]&flagInserted != 0 || seq <= start.Seq {
			next()
		}
	}
	for k != nil || len(inserted) > 0 {
		var liveSeq uint64
		if k != nil {
			_, liveSeq, _, _ = splitChained(v)
		}
		if k == nil || (len(inserted) > 0 && inserted[0].seq < liveSeq) {
			e := inserted[0]
			inserted = inserted[1:]
			if check(e.id, getEvent(tx, e.id[:])) {
				return r, nil
			}
			continue
		}
		if check(ulid.ULID(k), v) {
			return r, nil
		}
		next()
	}
	r.End = prev
	if prev != head {
		b := ChainBreak{Seq: head.Seq,
			Problem: fmt.Sprintf("the chain head in meta is link %d (event %s), but the log ends at link %d (event %s): events were removed at the end, or the head was rewritten", head.Seq, head.ID, prev.Seq, prev.ID)}
		if head.Seq == prev.Seq && head.ID == prev.ID {
			b.Problem = fmt.Sprintf("the chain head in meta does not match link %d (event %s)", head.Seq, head.ID)
		}
		b.EventID = head.ID
		fail(b)
	}
	return r, nil
}

// ChainLinkOf returns the chain position and link stored with event id; ok
// is false when the log has no such event or the event is not chained. The
// fleet's publisher compares it with the head the fleet received for that
// event, which catches a log rewritten after it was published.
func (l *Log) ChainLinkOf(id ulid.ULID) (h ChainHead, ok bool, err error) {
	err = l.db.View(func(tx *bolt.Tx) error {
		v := getEvent(tx, id[:])
		if v == nil {
			return nil
		}
		if _, seq, link, chained := splitChained(v); chained {
			h, ok = ChainHead{Seq: seq, ID: id, Link: link}, true
		}
		return nil
	})
	return h, ok, err
}
