package ledger

import (
	"bytes"
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"
	bolt "go.etcd.io/bbolt"
)

// Bucket names.
var (
	bucketEvents    = []byte("events")    // ULID -> encoded event
	bucketByPort    = []byte("by_port")   // 2-byte port + ULID -> nothing (older files: a copy of the event), see ScanPort
	bucketPortTail  = []byte("port_tail") // ULID -> 2-byte port + encoded event: the port index's newest entries
	bucketSnapshots = []byte("snapshots") // ULID of the last event folded -> snapshot
	bucketMeta      = []byte("meta")      // small facts, see keyCount

	keyCount = []byte("count") // number of events in the log, uint64 big-endian
)

// DefaultLockTimeout is how long Open waits for another process to let go of
// the file before it gives up with ErrLocked.
const DefaultLockTimeout = 5 * time.Second

// Options configure a Log.
type Options struct {
	// Timeout is how long Open waits for the file lock (default
	// DefaultLockTimeout). Open never waits forever.
	Timeout time.Duration
	// Now is the clock (default time.Now). Tests step it.
	Now func() time.Time
	// Entropy is the random part of new IDs (default a ChaCha8 stream seeded
	// from crypto/rand).
	Entropy io.Reader
	// NoSync skips fsync on commit. Only benchmarks of the CPU cost use it.
	NoSync bool
	// ReadOnly opens an existing file for reading only, under a shared
	// lock, as on a read-only file system. Appends then fail.
	ReadOnly bool
	// PortIndexTail is how many of the port index's newest entries are
	// kept in its tail before they are merged into by_port (default
	// DefaultPortIndexTail; 1 writes every entry straight to by_port).
	PortIndexTail int
}

// DefaultPortIndexTail is the default of Options.PortIndexTail.
//
// The port index is written in the same transaction as its events, in two
// parts. by_port, keyed by port and then ID, is what makes a port's history
// one cursor walk; but a group of events on 16 ports dirties 16 of its leaf
// pages and their branch pages, which was about 30 of the 34 pages that a
// commit wrote. So a commit puts its index entries in port_tail, keyed by ID
// alone, where they land on the one or two pages at its end, and the commit
// that brings the tail to this many entries moves them all into by_port at
// once, where they share each port's leaf pages. Readers merge both parts.
const DefaultPortIndexTail = 4096

// Log is the append-only event log in a bbolt file: the only source of truth.
// It is safe for concurrent use; appends are serialised by bbolt's single
// writer, and reads run in parallel with them.
type Log struct {
	db      *bolt.DB
	path    string
	now     func() time.Time
	entropy io.Reader

	tailMax int // Options.PortIndexTail

	mu    sync.Mutex // guards last, tailN and head
	last  ulid.ULID  // the newest ID in the log
	tailN int        // entries in port_tail
	head  ChainHead  // the hash chain's newest link (see chain.go)

	// noChain makes Append write events without their chain trailer. Only
	// the benchmark that prices the chain sets it (chain_benchhook.go,
	// built with the ledgerbench tag); a log so written does not verify.
	noChain bool
}

// Open opens or creates the log at path, creating its folder (mode 0700).
// It returns an error wrapping ErrLocked if another process holds the file
// past opts.Timeout, and one wrapping ErrCorrupt if the file is not a ledger;
// a file that exists is never overwritten.
func Open(path string, opts Options) (*Log, error) {
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultLockTimeout
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.PortIndexTail <= 0 {
		opts.PortIndexTail = DefaultPortIndexTail
	}
	if opts.Entropy == nil {
		var seed [32]byte
		if _, err := crand.Read(seed[:]); err != nil {
			return nil, fmt.Errorf("open log: seed entropy: %w", err)
		}
		opts.Entropy = rand.NewChaCha8(seed)
	}
	if opts.ReadOnly {
		return openReadOnly(path, opts)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("open log: %w", err)
	}
	if err := checkFile(path, opts.Timeout); err != nil {
		return nil, openError(path, opts.Timeout, err)
	}
	db, err := openLocked(path, opts)
	if err != nil {
		return nil, openError(path, opts.Timeout, err)
	}
	l := &Log{db: db, path: path, now: opts.Now, entropy: opts.Entropy, tailMax: opts.PortIndexTail}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, name := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		if tx.Bucket(bucketServices) == nil {
			b, err := tx.CreateBucket(bucketServices)
			if err != nil {
				return err
			}
			if err := backfillServices(tx, b); err != nil {
				return err
			}
		}
		if k, _ := tx.Bucket(bucketEvents).Cursor().Last(); k != nil {
			copy(l.last[:], k)
		}
		c := tx.Bucket(bucketPortTail).Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			l.tailN++
		}
		return l.loadChain(tx)
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open log %s: %w", path, err)
	}
	return l, nil
}

// openLocked opens the bbolt file at path for writing, and makes sure the
// file it locked is still the one at path: `ledger compact` puts a new file
// in place while it holds the lock of the old one, and a process that waited
// for that lock must not write into the old file, which nobody will read.
func openLocked(path string, opts Options) (*bolt.DB, error) {
	deadline := time.Now().Add(opts.Timeout)
	for {
		var f *os.File
		db, err := bolt.Open(path, 0o600, &bolt.Options{
			Timeout:      max(time.Until(deadline), time.Millisecond),
			NoSync:       opts.NoSync,
			FreelistType: bolt.FreelistMapType,
			OpenFile: func(name string, flag int, perm os.FileMode) (*os.File, error) {
				var err error
				f, err = os.OpenFile(name, flag, perm)
				return f, err
			},
		})
		if err != nil {
			return nil, err
		}
		locked, err1 := f.Stat()
		named, err2 := os.Stat(path)
		if err1 == nil && err2 == nil && os.SameFile(locked, named) {
			return db, nil
		}
		_ = db.Close()
		if err := errors.Join(err1, err2); err != nil {
			return nil, err
		}
		if time.Now().After(deadline) {
			return nil, bolt.ErrTimeout
		}
	}
}

// openReadOnly opens an existing ledger for reading only. checkFile's
// read-only look is all it needs: a read-only open never reads the
// freelist.
func openReadOnly(path string, opts Options) (*Log, error) {
	if err := checkFile(path, opts.Timeout); err != nil {
		return nil, openError(path, opts.Timeout, err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: opts.Timeout})
	if err != nil {
		return nil, openError(path, opts.Timeout, err)
	}
	l := &Log{db: db, path: path, now: opts.Now, entropy: opts.Entropy, tailMax: opts.PortIndexTail}
	err = db.View(func(tx *bolt.Tx) error {
		// port_tail came later than the others: a file written before it
		// has its whole index in by_port.
		for _, name := range [][]byte{bucketEvents, bucketByPort, bucketSnapshots, bucketMeta} {
			if tx.Bucket(name) == nil {
				return fmt.Errorf("%w: no bucket %q", ErrCorrupt, name)
			}
		}
		if k, _ := tx.Bucket(bucketEvents).Cursor().Last(); k != nil {
			copy(l.last[:], k)
		}
		return l.loadChain(tx)
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open log %s: %w", path, err)
	}
	return l, nil
}

// checkFile refuses an existing file that is not a whole bbolt file before
// it is opened for writing. bbolt reads the freelist page while it opens a
// file for writing, and a page past the end of a truncated file panics or
// faults, so the file is first mapped read-only (which reads only the
// checksummed meta pages) and its size compared with the pages it claims.
// Nothing is written to the file here.
func checkFile(path string, timeout time.Duration) error {
	info, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if info.IsDir() {
		return fmt.Errorf("%s is a directory, not a ledger file: move it away, or choose another data directory", path)
	}
	if info.Size() == 0 {
		return nil // an empty file becomes a new ledger
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: timeout})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) || errors.Is(err, fs.ErrPermission) {
			return err
		}
		// The file opened but bbolt cannot read it as a database (bad meta
		// pages, or too small to hold them).
		return fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	defer db.Close()
	var need int64
	_ = db.View(func(tx *bolt.Tx) error {
		need = tx.Size()
		return nil
	})
	// Stat again under the shared lock: another process may have grown the
	// file between the first look and the lock.
	if info, err = os.Stat(path); err != nil {
		return err
	}
	if info.Size() < need {
		return fmt.Errorf("%w: the file is %d bytes but its pages need %d: truncated", ErrCorrupt, info.Size(), need)
	}
	if err := checkPages(path); err != nil {
		return err
	}
	return touchBuckets(db)
}

// openError explains an error of bbolt's Open.
func openError(path string, timeout time.Duration, err error) error {
	switch {
	case errors.Is(err, bolt.ErrTimeout):
		return fmt.Errorf("open log %s: %w (waited %s; is `ledger serve` running on this data directory?)", path, ErrLocked, timeout)
	case errors.Is(err, ErrCorrupt):
		return fmt.Errorf("open log %s: %w", path, err)
	case errors.Is(err, bolt.ErrInvalid), errors.Is(err, bolt.ErrVersionMismatch), errors.Is(err, bolt.ErrChecksum):
		return fmt.Errorf("open log %s: %w: %v", path, ErrCorrupt, err)
	}
	return fmt.Errorf("open log %s: %w", path, err)
}

// Close closes the file.
func (l *Log) Close() error {
	return l.db.Close()
}

// Path returns the file's path.
func (l *Log) Path() string { return l.path }

// SnapshotFunc is called inside the write transaction of Append, after the
// batch has its IDs, with the number of events in the log after the batch.
// It returns the snapshot to store under the batch's last ID, or nil.
type SnapshotFunc func(count uint64, batch []Event) ([]byte, error)

// Append writes evs in one transaction, one fsync, and returns them with
// their IDs and times set. IDs are strictly increasing, even when the clock
// steps back: an ID's millisecond is max(now, newest ID's millisecond). The
// port index (see DefaultPortIndexTail) and the event count are written in
// the same transaction, and so is the snapshot that snap returns, if any.
// Nothing is written if any event fails to encode or the commit fails.
func (l *Log) Append(evs []Event, snap SnapshotFunc) ([]Event, error) {
	if len(evs) == 0 {
		return evs, nil
	}
	if l.db.IsReadOnly() {
		return evs, fmt.Errorf("append: %s was opened read-only (its file system is read-only)", l.path)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	last := l.last
	head := l.head
	tailN := l.tailN
	for i := range evs {
		if evs[i].Port > 0 {
			tailN++
		}
	}
	merge := tailN >= l.tailMax
	var buf []byte
	err := l.db.Update(func(tx *bolt.Tx) error {
		events := tx.Bucket(bucketEvents)
		events.FillPercent = 1.0 // keys only ever grow: pack pages full
		byPort := tx.Bucket(bucketByPort)
		byPort.FillPercent = 0.9
		tail := tx.Bucket(bucketPortTail)
		tail.FillPercent = 1.0
		meta := tx.Bucket(bucketMeta)
		services := tx.Bucket(bucketServices)
		now := l.now()
		for i := range evs {
			id, err := l.nextID(last, now)
			if err != nil {
				return err
			}
			last = id
			evs[i].ID = id
			evs[i].At = IDTime(id)
			buf, err = AppendEncoded(buf[:0], &evs[i])
			if err != nil {
				return err
			}
			var v []byte
			n := len(buf)
			if l.noChain {
				v = bytes.Clone(buf)
			} else {
				v, head = chainEvent(head, id, buf)
			}
			if err := events.Put(id[:], v); err != nil {
				return err
			}
			if err := indexService(services, &evs[i]); err != nil {
				return err
			}
			v = v[:n] // the index's copy carries no link
			switch {
			case evs[i].Port == 0:
			case merge:
				err = byPort.Put(portKey(evs[i].Port, id), nil)
			default:
				tv := make([]byte, 2, 2+len(v))
				binary.BigEndian.PutUint16(tv, uint16(evs[i].Port))
				err = tail.Put(id[:], append(tv, v...))
			}
			if err != nil {
				return err
			}
		}
		if merge {
			if err := mergeTail(tx); err != nil {
				return fmt.Errorf("merge the port index: %w", err)
			}
		}
		count := countOf(meta) + uint64(len(evs))
		if err := meta.Put(keyCount, binary.BigEndian.AppendUint64(nil, count)); err != nil {
			return err
		}
		if !l.noChain {
			if err := meta.Put(keyChainHead, head.bytes()); err != nil {
				return err
			}
		}
		if snap != nil {
			data, err := snap(count, evs)
			if err != nil {
				return fmt.Errorf("snapshot: %w", err)
			}
			if data != nil {
				if err := tx.Bucket(bucketSnapshots).Put(last[:], snapshotValue(head, data)); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		for i := range evs {
			evs[i].ID = ulid.Zero
		}
		return evs, fmt.Errorf("append: %w", err)
	}
	l.last = last
	l.head = head
	l.tailN = tailN
	if merge {
		l.tailN = 0
	}
	return evs, nil
}

// allBuckets are the buckets of a ledger file.
var allBuckets = [][]byte{bucketEvents, bucketByPort, bucketPortTail, bucketSnapshots, bucketMeta}

// mergeTail moves every entry of port_tail into by_port and empties the
// tail, inside tx.
func mergeTail(tx *bolt.Tx) error {
	byPort := tx.Bucket(bucketByPort)
	c := tx.Bucket(bucketPortTail).Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		port, err := tailPort(k, v)
		if err != nil {
			return err
		}
		if err := byPort.Put(portKey(port, ulid.ULID(k)), nil); err != nil {
			return err
		}
	}
	if err := tx.DeleteBucket(bucketPortTail); err != nil {
		return err
	}
	_, err := tx.CreateBucket(bucketPortTail)
	return err
}

// nextID returns an ID strictly greater than last: a fresh random ID in
// now's millisecond when the clock is ahead, else last plus one.
func (l *Log) nextID(last ulid.ULID, now time.Time) (ulid.ULID, error) {
	ms := uint64(max(now.UnixMilli(), 0))
	if ms > last.Time() {
		var id ulid.ULID
		if err := id.SetTime(ms); err != nil {
			return id, err
		}
		if _, err := io.ReadFull(l.entropy, id[6:]); err != nil {
			return id, fmt.Errorf("entropy: %w", err)
		}
		return id, nil
	}
	id := last
	for i := 15; i >= 6; i-- {
		id[i]++
		if id[i] != 0 {
			return id, nil
		}
	}
	// The random part overflowed: move to the next millisecond.
	var next ulid.ULID
	if err := next.SetTime(last.Time() + 1); err != nil {
		return next, err
	}
	return next, nil
}

func portKey(port int, id ulid.ULID) []byte {
	k := make([]byte, 18)
	binary.BigEndian.PutUint16(k, uint16(port))
	copy(k[2:], id[:])
	return k
}

func countOf(meta *bolt.Bucket) uint64 {
	if v := meta.Get(keyCount); len(v) == 8 {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

// LastID returns the newest ID in the log (zero when empty).
func (l *Log) LastID() ulid.ULID {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.last
}

// Count returns the number of events in the log.
func (l *Log) Count() (uint64, error) {
	var n uint64
	err := l.db.View(func(tx *bolt.Tx) error {
		n = countOf(tx.Bucket(bucketMeta))
		return nil
	})
	return n, err
}

// Last returns the newest event; ok is false when the log is empty.
func (l *Log) Last() (e Event, ok bool, err error) {
	err = l.db.View(func(tx *bolt.Tx) error {
		k, v := tx.Bucket(bucketEvents).Cursor().Last()
		if k == nil {
			return nil
		}
		e, err = DecodeEvent(ulid.ULID(k), v)
		ok = err == nil
		return err
	})
	return e, ok, err
}

// Get returns the event with the given ID, or an ENOTFOUND error.
func (l *Log) Get(id ulid.ULID) (e Event, err error) {
	err = l.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketEvents).Get(id[:])
		if v == nil {
			return Errorf(ENOTFOUND, "no event %s", id)
		}
		e, err = DecodeEvent(id, v)
		return err
	})
	return e, err
}

// Scan calls fn for every event with after < ID <= until, oldest first. A
// zero after starts at the beginning; a zero until has no end. An error from
// fn stops the scan and is returned.
func (l *Log) Scan(after, until ulid.ULID, fn func(Event) error) error {
	return l.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketEvents).Cursor()
		var k, v []byte
		if after.IsZero() {
			k, v = c.First()
		} else {
			k, v = c.Seek(after[:])
			if k != nil && ulid.ULID(k) == after {
				k, v = c.Next()
			}
		}
		for ; k != nil; k, v = c.Next() {
			id := ulid.ULID(k)
			if !until.IsZero() && id.Compare(until) > 0 {
				return nil
			}
			e, err := DecodeEvent(id, v)
			if err != nil {
				return err
			}
			if err := fn(e); err != nil {
				return err
			}
		}
		return nil
	})
}

// ScanPort calls fn for every event of one port with since <= ID <= until,
// oldest first, using the port index. Zero bounds are open.
//
// The index's tail holds a copy of each of its events; by_port holds the
// IDs alone (files written before held copies there too, which are read as
// they are), and each is looked up in the events bucket: a B+tree search per
// event, about 1 µs. A copy per event would double the file (about 25 of
// the 110 bytes an event takes) to make a port's whole history, which is
// read a page at a time, a few times faster.
func (l *Log) ScanPort(port int, since, until ulid.ULID, fn func(Event) error) error {
	if err := CheckPort(port); err != nil {
		return err
	}
	return l.db.View(func(tx *bolt.Tx) error {
		tail, err := portTail(tx, port, since, until)
		if err != nil {
			return err
		}
		events := tx.Bucket(bucketEvents)
		visit := func(id ulid.ULID, v []byte) error {
			e, err := indexedEvent(events, id, v)
			if err != nil {
				return err
			}
			return fn(e)
		}
		c := tx.Bucket(bucketByPort).Cursor()
		for k, v := c.Seek(portKey(port, since)); k != nil && int(binary.BigEndian.Uint16(k)) == port; k, v = c.Next() {
			id := ulid.ULID(k[2:])
			if !until.IsZero() && id.Compare(until) > 0 {
				break
			}
			for len(tail) > 0 && tail[0].id.Compare(id) < 0 {
				if err := visit(tail[0].id, tail[0].v); err != nil {
					return err
				}
				tail = tail[1:]
			}
			if err := visit(id, v); err != nil {
				return err
			}
		}
		for _, t := range tail {
			if err := visit(t.id, t.v); err != nil {
				return err
			}
		}
		return nil
	})
}

// tailEntry is an entry of the port index's tail.
type tailEntry struct {
	id ulid.ULID
	v  []byte // the encoded event
}

// portTail returns the entries of one port in the index's tail with since
// <= ID <= until (zero bounds open), oldest first. The values point into
// tx's pages.
func portTail(tx *bolt.Tx, port int, since, until ulid.ULID) ([]tailEntry, error) {
	b := tx.Bucket(bucketPortTail)
	if b == nil {
		return nil, nil // a file from before the tail, opened read-only
	}
	var out []tailEntry
	c := b.Cursor()
	for k, v := c.Seek(since[:]); k != nil; k, v = c.Next() {
		p, err := tailPort(k, v)
		if err != nil {
			return nil, err
		}
		id := ulid.ULID(k)
		if !until.IsZero() && id.Compare(until) > 0 {
			break
		}
		if p == port {
			out = append(out, tailEntry{id: id, v: v[2:]})
		}
	}
	return out, nil
}

// tailPort returns the port of a port_tail entry, whose key is an ID and
// whose value starts with the 2-byte port.
func tailPort(k, v []byte) (int, error) {
	if len(k) != 16 || len(v) < 2 {
		return 0, fmt.Errorf("%w: port_tail entry %x", ErrCorrupt, k)
	}
	return int(binary.BigEndian.Uint16(v)), nil
}

// indexedEvent decodes the event of a port index entry, looking it up in
// the events bucket when the entry holds no copy.
func indexedEvent(events *bolt.Bucket, id ulid.ULID, v []byte) (Event, error) {
	if len(v) == 0 {
		if v = events.Get(id[:]); v == nil {
			return Event{}, fmt.Errorf("port index names missing event %s: %w", id, ErrCorrupt)
		}
	}
	return DecodeEvent(id, v)
}

// Snapshot returns the newest snapshot taken at or before the point at (zero
// at: the newest of all), with the ID of the last event it covers. ok is
// false when there is none.
func (l *Log) Snapshot(at ulid.ULID) (id ulid.ULID, data []byte, ok bool, err error) {
	err = l.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketSnapshots).Cursor()
		var k, v []byte
		if at.IsZero() {
			k, v = c.Last()
		} else {
			k, v = c.Seek(at[:])
			if k == nil || ulid.ULID(k).Compare(at) > 0 {
				k, v = c.Prev()
			}
		}
		if k == nil {
			return nil
		}
		v, _, _ = splitSnapshot(v)
		id, data, ok = ulid.ULID(k), append([]byte(nil), v...), true
		return nil
	})
	return id, data, ok, err
}

// Check runs bbolt's consistency check over the whole file and returns the
// first problem it finds, wrapped in ErrCorrupt.
func (l *Log) Check() error {
	return l.db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			return fmt.Errorf("check %s: %w: %v", l.path, ErrCorrupt, err)
		}
		return nil
	})
}

// Size returns the size of the file in bytes.
func (l *Log) Size() (int64, error) {
	var n int64
	err := l.db.View(func(tx *bolt.Tx) error {
		n = tx.Size()
		return nil
	})
	return n, err
}
