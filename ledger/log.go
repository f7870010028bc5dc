package ledger

import (
	crand "crypto/rand"
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
	bucketByPort    = []byte("by_port")   // 2-byte port + ULID -> the port's next IDs (a block, see portblocks.go)
	bucketPortTail  = []byte("port_tail") // files written before the index mark: ULID -> 2-byte port + encoded event, see porttail.go
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
	// PortIndexBlock is how many IDs one by_port entry holds at most
	// (default DefaultPortIndexBlock; see portblocks.go).
	PortIndexBlock int
	// ReadAhead asks the kernel, at open, to read the whole file into the
	// page cache in the background (posix_fadvise WILLNEED on Linux;
	// nothing elsewhere), for a command that reads the whole log once, as
	// `ledger replay` does: the pages of a log that is not in the page
	// cache otherwise come in a page fault at a time, a few pages a read.
	// It costs nothing when the pages are there already.
	ReadAhead bool
}

// DefaultPortIndexTail is the default of Options.PortIndexTail.
//
// The port index is kept in two parts (porttail.go). by_port, keyed by port
// and then ID, is what makes a port's history one cursor walk; but a group
// of events on 16 ports dirtied 16 of its leaf pages and their branch pages,
// about 30 of the 34 pages that a commit wrote. So a commit writes no index
// entry: the events after the index mark are the index's tail, read from
// the events_tail bucket (eventstail.go), and the commit that brings the tail to this
// many events with a port writes all their entries into by_port at once,
// where they share each port's leaf pages. Readers merge both parts.
const DefaultPortIndexTail = 4096

// Log is the append-only event log in a bbolt file: the only source of truth.
// It is safe for concurrent use; appends are serialised by bbolt's single
// writer, and reads run in parallel with them.
type Log struct {
	db      *bolt.DB
	path    string
	now     func() time.Time
	entropy io.Reader

	tailMax  int // Options.PortIndexTail
	blockMax int // Options.PortIndexBlock

	mu    sync.Mutex // guards last, tailN and head
	last  ulid.ULID  // the newest ID in the log
	tailN int        // events with a port after the index mark
	head  ChainHead  // the hash chain's newest link (see chain.go)

	recentMu sync.RWMutex
	recent   lastPorts // the last ports of the services allocated after the index mark (services.go)

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
	if opts.PortIndexBlock <= 0 {
		opts.PortIndexBlock = DefaultPortIndexBlock
	}
	if opts.Entropy == nil {
		var seed [32]byte
		if _, err := crand.Read(seed[:]); err != nil {
			return nil, fmt.Errorf("open log: seed entropy: %w", err)
		}
		opts.Entropy = rand.NewChaCha8(seed)
	}
	if opts.ReadAhead {
		defer readAhead(path)
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
	l := &Log{db: db, path: path, now: opts.Now, entropy: opts.Entropy, tailMax: opts.PortIndexTail, blockMax: opts.PortIndexBlock}
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
		if k, _ := eventsCursor(tx).Last(); k != nil {
			copy(l.last[:], k)
		}
		if err := upgradeIndex(tx); err != nil {
			return fmt.Errorf("the port index: %w", err)
		}
		if err := upgradeEventsTail(tx); err != nil {
			return fmt.Errorf("the events' tail: %w", err)
		}
		l.tailN, l.recent = readTail(tx)
		return l.loadChain(tx)
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open log %s: %w", path, err)
	}
	return l, nil
}

// freelistType is how bbolt keeps the file's free pages: an array, sorted,
// from which a commit takes the lowest free pages. The hash map bbolt also
// offers takes any free page, and over a year of merges a large file's free
// pages then lie anywhere in it: an allocate+release cycle on the 10M-event
// log written so took 1.23-1.26x its time on a new log, where on the same
// log written with the array it takes 1.01-1.09x (BenchmarkCommit10M). The
// ledger's files keep few free pages (a merge frees about a hundred), so the
// array's cost per free page does not show.
const freelistType = bolt.FreelistArrayType

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
			FreelistType: freelistType,
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
	l := &Log{db: db, path: path, now: opts.Now, entropy: opts.Entropy, tailMax: opts.PortIndexTail, blockMax: opts.PortIndexBlock}
	err = db.View(func(tx *bolt.Tx) error {
		// A file written before the index mark is read as it is: its tail,
		// if any, is in port_tail (porttail.go).
		for _, name := range [][]byte{bucketEvents, bucketByPort, bucketSnapshots, bucketMeta} {
			if tx.Bucket(name) == nil {
				return fmt.Errorf("%w: no bucket %q", ErrCorrupt, name)
			}
		}
		if k, _ := eventsCursor(tx).Last(); k != nil {
			copy(l.last[:], k)
		}
		_, l.recent = readTail(tx)
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

// allBuckets are the buckets of a ledger file.
var allBuckets = [][]byte{bucketEvents, bucketByPort, bucketSnapshots, bucketMeta}

// Check runs bbolt's consistency check over the whole file, and checks that
// the events lie on the right side of the index mark (eventstail.go); it
// returns the first problem it finds, wrapped in ErrCorrupt.
func (l *Log) Check() error {
	return l.db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			return fmt.Errorf("check %s: %w: %v", l.path, ErrCorrupt, err)
		}
		if err := checkEventsSplit(tx); err != nil {
			return fmt.Errorf("check %s: %w", l.path, err)
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
