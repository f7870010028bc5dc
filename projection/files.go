package projection

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/oklog/ulid/v2"
	"github.com/portledger/portledger/ledger"
)

// flushBytes bounds the lines a catch-up holds in memory before it writes
// them: a daemon's catch-up after one group commit writes once, a catch-up
// over a long gap writes in pieces of about this size.
var flushBytes = 1 << 20 // a variable for the tests

// progressEvery is how many events pass between two progress reports.
const progressEvery = 50_000

// Files keeps port_registry.json and the daily JSONL logs in step with the
// log. The daemon and the CLI call CatchUp after every commit.
//
// The files are at-least-once projections whose position is read back from
// the files themselves: the position is the event_id of the last complete
// line of the newest JSONL file. After a crash, OpenFiles cuts away a
// partly written last line and CatchUp resumes after the last complete one,
// so no event is written twice and none is skipped. The JSONL writes are not
// fsynced: the log is the truth and anything lost is written again.
//
// A Files is safe for concurrent use; its calls are serialised. Only one
// Files may write a data directory at a time, which the log's file lock
// ensures for the process that holds the log.
type Files struct {
	mu     sync.Mutex
	layout ledger.Layout
	log    *ledger.Log

	reg *Registry // folded up to pos; nil after a failure, to be reloaded from the files
	pos ulid.ULID // the last event in the JSONL files

	regID string // last_event_id of port_registry.json on disk
	regOK bool   // port_registry.json exists and is readable

	day    string   // name of the open day file
	file   *os.File // the open day file, for appending
	buf    []byte   // lines of the current catch-up not yet written
	behind behind   // a long catch-up's last chunk, still cached (dropbehind.go)

	closed bool

	// progress is what Progress reports, readable while a catch-up holds mu.
	progress struct {
		sync.Mutex
		running bool
		upTo    ulid.ULID
		written uint64
	}
}

// Progress says whether a catch-up is writing the files, the last event
// they hold and how many events the running catch-up has written. It does
// not wait for the catch-up.
func (f *Files) Progress() ledger.FilesStatus {
	f.progress.Lock()
	defer f.progress.Unlock()
	return ledger.FilesStatus{CatchingUp: f.progress.running, UpTo: f.progress.upTo, Written: f.progress.written}
}

// setProgress records what Progress reports.
func (f *Files) setProgress(running bool, written uint64) {
	f.progress.Lock()
	f.progress.running, f.progress.upTo, f.progress.written = running, f.pos, written
	f.progress.Unlock()
}

// OpenFiles finds where the projection files stand and folds the registry
// up to there. It cuts away a partial last JSONL line left by a crash, and
// removes every JSONL file when the newest one ends in a line that is not
// JSON or names an event the log does not have, so that CatchUp rebuilds
// them from the start. It reads the log and never writes to it. Call
// CatchUp to bring the files up to the log.
//
// Only the newest JSONL file's last line is checked, so that opening stays
// cheap however long the logs are; `ledger replay --verify` checks every
// line.
func OpenFiles(layout ledger.Layout, log *ledger.Log) (*Files, error) {
	f := &Files{layout: layout, log: log}
	if err := f.load(); err != nil {
		return nil, err
	}
	return f, nil
}

// newEmptyFiles returns a Files at the start of the log that writes under
// layout as if no file were there: the replay writer.
func newEmptyFiles(layout ledger.Layout, log *ledger.Log) *Files {
	reg := NewRegistry()
	reg.SetLastPortLookup(nil)
	return &Files{layout: layout, log: log, reg: reg}
}

// CatchUp writes a JSONL line for every event after the files' position, in
// log order and into the file of each event's day, then rewrites
// port_registry.json when anything was written or the file does not reflect
// the position. It returns how many events it wrote. After a failure the
// next call starts again from what the files hold.
func (f *Files) CatchUp() (written int, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return 0, fmt.Errorf("projection files: %w", ledger.ErrClosed)
	}
	if f.reg == nil {
		if err := f.load(); err != nil {
			return 0, err
		}
	}
	n, err := f.catchUp(nil)
	if err != nil {
		f.forget()
		return int(n), err
	}
	return int(n), nil
}

// Close closes the open day file. Files written so far stay as they are.
func (f *Files) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil
	}
	f.closed = true
	return f.closeDay()
}

// catchUp is CatchUp without the lock and the recovery; progress, if set,
// is called every progressEvery events with the number read so far (the
// lines of the last few hundred may still be on their way to the files).
//
// Three goroutines share the work, so that a long catch-up (a replay of
// 10M events) keeps both cores and the disk busy: this one reads the log
// and folds the registry, which each line needs as it was just before its
// event; format turns the events into JSONL lines; and a writer of its own
// writes each full buffer while the next one fills.
func (f *Files) catchUp(progress func(done uint64)) (uint64, error) {
	batches := make(chan []lineItem, 4)
	free := make(chan []lineItem, 6) // batches format is done with, to fill again
	var failed atomic.Bool           // format failed: stop reading
	var aborted atomic.Bool          // reading failed: write nothing more
	formatted := make(chan error, 1)
	go func() { formatted <- f.format(batches, free, &failed, &aborted) }()
	defer f.setProgress(false, 0)

	var n uint64
	bufDay := int64(math.MinInt64) // the last event's date (unixDay), to find a new day without naming it
	var batch []lineItem
	send := func() error {
		if len(batch) == 0 {
			return nil
		}
		if failed.Load() {
			return errFormatFailed
		}
		batches <- batch
		select {
		case batch = <-free:
			batch = batch[:0]
		default:
			batch = make([]lineItem, 0, lineBatch)
		}
		return nil
	}
	batch = make([]lineItem, 0, lineBatch)
	// The log is read in chunks, each in a read transaction of its own: a
	// transaction open for the whole of a long catch-up would keep bbolt
	// from growing its map of the file, and a commit that must grow it would
	// wait for the catch-up to end.
	var scanned uint64
	from := f.pos
	visit := func(e ledger.Event) error {
		scanned++
		item := lineItem{e: e}
		if day := unixDay(e.At); day != bufDay {
			item.day = dayFileName(e.At)
			bufDay = day
		}
		if e.Type != ledger.EventAllocated {
			if a := f.reg.Allocs[e.Port]; a != nil {
				item.held = heldNames{ok: true, service: a.ServiceName, by: a.StartedBy, purpose: a.Purpose}
			}
		}
		f.reg.Apply(e)
		batch = append(batch, item)
		n++
		if len(batch) == cap(batch) {
			if err := send(); err != nil {
				return err
			}
		}
		if progress != nil && n%progressEvery == 0 {
			progress(n)
		}
		if scanned%catchUpChunk == 0 {
			from = e.ID
			return errChunkDone
		}
		return nil
	}
	var err error
	for {
		err = f.log.Scan(from, ulid.Zero, visit)
		if err != errChunkDone {
			break
		}
	}
	if err == nil {
		err = send()
	}
	if err != nil {
		aborted.Store(true)
	}
	close(batches)
	ferr := <-formatted // after an error too: no write may go on behind the caller
	if err == nil || errors.Is(err, errFormatFailed) {
		err = ferr
	}
	if err != nil {
		return n, fmt.Errorf("catch up projection files: %w", err)
	}
	id := positionString(f.pos)
	if n > 0 || !f.regOK || f.regID != id {
		if err := writeRegistryFile(f.layout.Registry(), f.reg, f.pos); err != nil {
			return n, err
		}
		f.regID, f.regOK = id, true
	}
	return n, nil
}

// lineBatch is how many events the reader hands the formatter at a time.
const lineBatch = 256

// errFormatFailed stops the reading of a catch-up whose formatter failed;
// the formatter's own error is the one returned.
var errFormatFailed = errors.New("the projection files could not be written")

// lineItem is one event of a catch-up, with what its JSONL line needs of
// the registry just before it.
type lineItem struct {
	e    ledger.Event
	held heldNames
	day  string // set when the event's date differs from the event before it
}

// heldNames are the names of the allocation that held the event's port,
// which its JSONL line repeats (appendJSONL).
type heldNames struct {
	ok                   bool
	service, by, purpose string
}

// format writes the JSONL lines of the events it is handed into the day
// files, in order, and moves the files' position as each write completes.
// It returns after batches is closed (and every write is done), with the
// first error; after an error it reads and drops the rest. aborted, set
// before batches is closed, means the reader failed: what is left in the
// buffer is not written.
func (f *Files) format(batches <-chan []lineItem, free chan<- []lineItem, failed, aborted *atomic.Bool) error {
	var n uint64
	var pending ulid.ULID // the last event in buf
	var bufDay string     // the day file that buf belongs to
	// A full buffer is written by a goroutine of its own while the next
	// one fills, so that a long catch-up's writes (and the kernel's
	// throttling of them) overlap with reading and encoding the log. At
	// most one write is in flight; the files' position moves when it is
	// done.
	var inflight chan error // the write in flight, nil when none
	var spare []byte        // the buffer of the last write, to fill next
	var flightPos ulid.ULID // the last event of the write in flight
	var flightN uint64      // events written when it is done
	wait := func() error {
		if inflight == nil {
			return nil
		}
		err := <-inflight
		inflight = nil
		if err != nil {
			return err
		}
		f.pos = flightPos
		f.setProgress(true, flightN)
		return nil
	}
	flush := func() error {
		if len(f.buf) == 0 {
			return nil
		}
		if err := wait(); err != nil {
			return err
		}
		if err := f.openDay(bufDay); err != nil {
			return err
		}
		file, buf, done := f.file, f.buf, make(chan error, 1)
		go func() {
			if _, err := file.Write(buf); err != nil {
				done <- fmt.Errorf("write %s: %w", file.Name(), err)
				return
			}
			if len(buf) >= flushBytes {
				f.behind.wrote(file, len(buf)) // a long catch-up: keep the page cache small
			}
			done <- nil
		}()
		inflight, flightPos, flightN = done, pending, n
		f.buf, spare = spare[:0], buf
		return nil
	}
	var err error
	held := &ledger.Allocation{}
	for batch := range batches {
		for i := 0; i < len(batch) && err == nil; i++ {
			item := &batch[i]
			if item.day != "" && item.day != bufDay {
				if err = flush(); err != nil {
					break
				}
				bufDay = item.day
			}
			h := held
			if item.held.ok {
				held.ServiceName, held.StartedBy, held.Purpose = item.held.service, item.held.by, item.held.purpose
			} else {
				h = nil
			}
			f.buf = appendJSONL(f.buf, item.e, h)
			pending = item.e.ID
			n++
			if len(f.buf) >= flushBytes {
				err = flush()
			}
		}
		if err != nil {
			failed.Store(true)
		}
		select {
		case free <- batch[:0]:
		default:
		}
	}
	if err == nil && !aborted.Load() {
		err = flush()
	}
	if werr := wait(); err == nil {
		err = werr
	}
	if cap(f.buf) > 4*flushBytes {
		f.buf = nil // a long catch-up's buffer is not kept for the small ones
	}
	return err
}

// catchUpChunk is how many events one read transaction of a catch-up reads.
var catchUpChunk uint64 = 100_000

// errChunkDone ends one chunk's scan; the catch-up goes on from there.
var errChunkDone = errors.New("chunk done")

// openDay makes name the open day file, creating it if needed.
func (f *Files) openDay(name string) error {
	if f.file != nil && f.day == name {
		return nil
	}
	if err := f.closeDay(); err != nil {
		return err
	}
	dir := f.layout.LogsDir()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	file, err := openNoFollow(filepath.Join(dir, name), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	f.file, f.day = file, name
	return nil
}

func (f *Files) closeDay() error {
	if f.file == nil {
		return nil
	}
	f.behind.closing(f.file)
	err := f.file.Close()
	f.file, f.day = nil, ""
	return err
}

// forget drops the in-memory state after a failed catch-up, so the next one
// starts from what actually reached the files.
func (f *Files) forget() {
	_ = f.closeDay()
	f.reg = nil
	f.buf = f.buf[:0]
}

// load reads the position from the JSONL files, repairing or discarding
// them as OpenFiles describes, and folds the registry up to it.
func (f *Files) load() error {
	pos, err := f.findPosition()
	if err != nil {
		return fmt.Errorf("open projection files: %w", err)
	}
	reg, err := registryAt(f.log, pos)
	if err != nil {
		return fmt.Errorf("open projection files: %w", err)
	}
	if err := removeTemps(f.layout.Registry()); err != nil {
		return fmt.Errorf("open projection files: %w", err)
	}
	reg.SetLastPortLookup(nil) // the files never ask, and the names are many
	f.reg, f.pos = reg, pos
	f.regID, f.regOK = readRegistryFile(f.layout.Registry())
	return nil
}

// findPosition returns the event_id of the last complete line of the
// newest JSONL file, cutting away a partial last line first. Newest files
// left empty are removed. When the last line is not a line this package
// wrote for an event of the log, every JSONL file is removed and the
// position is the start.
func (f *Files) findPosition() (ulid.ULID, error) {
	dir := f.layout.LogsDir()
	names, err := dayFiles(dir)
	if err != nil {
		return ulid.Zero, err
	}
	for len(names) > 0 {
		name := names[len(names)-1]
		path := filepath.Join(dir, name)
		line, err := trimToLastLine(path)
		if err != nil {
			return ulid.Zero, err
		}
		if line == nil {
			if err := os.Remove(path); err != nil {
				return ulid.Zero, err
			}
			names = names[:len(names)-1]
			continue
		}
		id, ok, err := f.lineEvent(line, name)
		if err != nil {
			return ulid.Zero, err
		}
		if !ok {
			break // corrupt: rebuild every file
		}
		return id, nil
	}
	for _, name := range names {
		if err := os.Remove(filepath.Join(dir, name)); err != nil {
			return ulid.Zero, err
		}
	}
	return ulid.Zero, nil
}

// lineEvent reads the event_id of a JSONL line found in the day file name.
// ok is false when the line is not JSON, has no event ID, or names an event
// that the log does not have or that belongs to another day.
func (f *Files) lineEvent(line []byte, name string) (id ulid.ULID, ok bool, err error) {
	var l struct {
		EventID string `json:"event_id"`
	}
	if err := json.Unmarshal(line, &l); err != nil {
		return id, false, nil
	}
	id, err = ulid.ParseStrict(l.EventID)
	if err != nil {
		return id, false, nil
	}
	e, err := f.log.Get(id)
	if ledger.ErrorCode(err) == ledger.ENOTFOUND {
		return id, false, nil
	}
	if err != nil {
		return id, false, err
	}
	return id, dayFileName(e.At) == name, nil
}

// dayFiles lists the allocations_YYYYMMDD.jsonl files of dir, oldest
// first. A missing dir has none.
func dayFiles(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		if e.Type().IsRegular() && isDayFileName(e.Name()) {
			names = append(names, e.Name())
		}
	}
	slices.Sort(names)
	return names, nil
}

// trimToLastLine cuts the file at path after its last newline, dropping a
// partial line that a crash left, and returns its last complete line
// without the newline; nil when no complete line is left.
func trimToLastLine(path string) ([]byte, error) {
	file, err := openNoFollow(path, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	size, err := file.Seek(0, io.SeekEnd)
	if err != nil {
		return nil, err
	}
	// The last newline: everything after it is a partial line.
	window := int64(64 << 10)
	var keep int64
	for {
		start := max(size-window, 0)
		tail, err := readAt(file, start, size)
		if err != nil {
			return nil, err
		}
		if end := bytes.LastIndexByte(tail, '\n'); end >= 0 {
			keep = start + int64(end) + 1
			break
		}
		if start == 0 {
			break // no newline at all: keep = 0
		}
		window *= 2
	}
	if keep != size {
		if err := file.Truncate(keep); err != nil {
			return nil, err
		}
	}
	if keep == 0 {
		return nil, nil
	}
	// The newline before it, or the start of the file, begins the line.
	window = 64 << 10
	for {
		start := max(keep-window, 0)
		tail, err := readAt(file, start, keep)
		if err != nil {
			return nil, err
		}
		line := tail[:len(tail)-1]
		if begin := bytes.LastIndexByte(line, '\n'); begin >= 0 || start == 0 {
			return line[begin+1:], nil
		}
		window *= 2
	}
}

// readAt reads the bytes [from, to) of file.
func readAt(file *os.File, from, to int64) ([]byte, error) {
	b := make([]byte, to-from)
	if _, err := file.ReadAt(b, from); err != nil {
		return nil, err
	}
	return b, nil
}

// registryAt returns the registry after the event pos (zero: before any).
func registryAt(log *ledger.Log, pos ulid.ULID) (*Registry, error) {
	if pos.IsZero() {
		return NewRegistry(), nil // StateAt reads a zero point as the whole log
	}
	return StateAt(log, pos)
}
