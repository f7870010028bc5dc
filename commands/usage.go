package commands

import (
	"bufio"
	"container/heap"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"

	"github.com/oklog/ulid/v2"
	"github.com/portledger/portledger/ledger"
	"github.com/portledger/portledger/projection"
)

// DefaultUsageMemory is how many services' counts a usage read holds in
// memory (a few hundred bytes each) before it writes them out: a week of
// the scale fixture's CI host (19k services) stays in memory, a year of it
// (a million) takes some 70 MB of temporary file instead of half a GB of
// memory. Measured on that year, 20k keeps the daemon's peak RssAnon near
// 36 MiB, 32k and 50k near 56-60 MiB (the garbage collector lets the heap
// grow up to the 64 MiB limit), for the same time.
const DefaultUsageMemory = 20_000

// Usage reports, per service, how it used its ports over a window: the
// allocations made, the time held (clipped to the window), the longest
// hold, the ports still held at the end and the releases by reason. It
// folds the registry at the window's start from the nearest snapshot and
// scans the window. EINVALID when Since is after Until or the service name
// is bad.
func (l *Ledger) Usage(ctx context.Context, q ledger.UsageQuery) ([]ledger.ServiceUsage, error) {
	out := []ledger.ServiceUsage{}
	_, err := l.UsageEach(ctx, q, "", 0, func(u ledger.ServiceUsage) error {
		out = append(out, u)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// UsageEach is Usage a page at a time, in bounded memory whatever the
// window and the number of services: it calls fn for each service whose
// name sorts after after, by name, at most limit of them (0: every one),
// and returns the last one's name when there are more (the next page's
// after), else "". An error from fn stops it and is returned.
//
// The window is scanned once per call. The counts are held in memory up to
// Config.UsageMemory services; past that they are written, sorted by name,
// to a temporary file in runs, and the runs are merged as fn is called. A
// page smaller than that is counted in memory alone: the services named
// after its first limit+1 are not counted.
// Nothing is given to fn before the scan is done, so an error of the
// window comes before any row. EINVALID as Usage, and for an after longer
// than a service name.
func (l *Ledger) UsageEach(ctx context.Context, q ledger.UsageQuery, after string, limit int, fn func(ledger.ServiceUsage) error) (string, error) {
	if q.Service != "" {
		if err := ValidateServiceName(q.Service); err != nil {
			return "", err
		}
	}
	if len(after) > MaxServiceName {
		return "", ledger.Errorf(ledger.EINVALID, "after is %d characters long; a service name is at most %d", len(after), MaxServiceName)
	}
	if limit < 0 {
		return "", ledger.Errorf(ledger.EINVALID, "limit %d is negative", limit)
	}
	if !q.Since.IsZero() && !q.Until.IsZero() && q.Since.Compare(q.Until) > 0 {
		return "", ledger.Errorf(ledger.EINVALID, "since is after until")
	}
	end := l.cfg.Now().UTC()
	if !q.Until.IsZero() {
		end = ledger.IDTime(q.Until)
	}
	startAfter := ulid.Zero
	var start *projection.Registry
	if !q.Since.IsZero() {
		startAfter = ledger.PrevID(q.Since)
		reg, err := projection.StateAt(l.log, startAfter)
		if err != nil {
			return "", err
		}
		start = reg
	}
	f := projection.UsageFilter{After: after, Service: q.Service}
	if limit > 0 && limit < l.cfg.UsageMemory {
		f.First = limit + 1 // a page, and whether more follow, in memory
	}
	usage := projection.NewUsageOf(start, ledger.IDTime(q.Since), f)
	var spill *usageSpill
	defer func() { spill.close() }()
	err := l.log.ScanTypes(startAfter, q.Until, projection.UsageTypes, func(e ledger.Event) error {
		usage.Apply(e)
		if usage.Len() >= l.cfg.UsageMemory {
			if spill == nil {
				var err error
				if spill, err = newUsageSpill(); err != nil {
					return err
				}
			}
			if err := spill.writeRun(usage.Drain()); err != nil {
				return err
			}
		}
		return ctx.Err()
	})
	if err != nil {
		return "", err
	}
	usage.End(end)
	var next func() (ledger.ServiceUsage, bool, error)
	if spill == nil {
		rows := usage.Drain()
		next = func() (ledger.ServiceUsage, bool, error) {
			if len(rows) == 0 {
				return ledger.ServiceUsage{}, false, nil
			}
			u := rows[0]
			rows[0] = ledger.ServiceUsage{} // let it go as the rows are given
			rows = rows[1:]
			return u, true, nil
		}
	} else {
		if err := spill.writeRun(usage.Drain()); err != nil {
			return "", err
		}
		usage = nil
		if next, err = spill.merge(); err != nil {
			return "", err
		}
	}
	for n := 0; ; n++ {
		u, ok, err := next()
		if err != nil || !ok {
			return "", err
		}
		if limit > 0 && n == limit {
			return after, nil
		}
		if n%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return "", err
			}
		}
		if err := fn(u); err != nil {
			return "", err
		}
		after = u.Service
	}
}

// usageSpill is the temporary file of a usage read that holds too many
// services: runs of partial counts, each sorted by name, one after the
// other. A service's counts may be in several runs, those of an earlier
// part of the window first.
type usageSpill struct {
	f    *os.File
	w    *bufio.Writer
	runs []usageRun
	size int64
	buf  []byte
}

type usageRun struct{ off, n int64 }

// newUsageSpill creates the temporary file in $TMPDIR. Outside Windows it
// is unlinked at once, so that a daemon stopped in the middle of a read
// (killed, or ended past its shutdown's deadline) leaves nothing behind;
// Windows cannot remove an open file, and close removes it there.
func newUsageSpill() (*usageSpill, error) {
	f, err := os.CreateTemp("", "portledger-usage-*")
	if err != nil {
		return nil, fmt.Errorf("usage: temporary file: %w", err)
	}
	if runtime.GOOS != "windows" {
		os.Remove(f.Name())
	}
	return &usageSpill{f: f, w: bufio.NewWriterSize(f, 64<<10)}, nil
}

// close closes and removes the file; a nil spill has none.
func (s *usageSpill) close() {
	if s == nil {
		return
	}
	s.f.Close()
	os.Remove(s.f.Name())
}

// writeRun appends one run.
func (s *usageSpill) writeRun(rows []ledger.ServiceUsage) error {
	off := s.size
	for i := range rows {
		s.buf = appendUsage(s.buf[:0], &rows[i])
		if _, err := s.w.Write(s.buf); err != nil {
			return fmt.Errorf("usage: write temporary file: %w", err)
		}
		s.size += int64(len(s.buf))
	}
	s.runs = append(s.runs, usageRun{off: off, n: s.size - off})
	return nil
}

// merge returns the services of every run by name, the parts of one
// service added up in the order of their runs.
func (s *usageSpill) merge() (func() (ledger.ServiceUsage, bool, error), error) {
	if err := s.w.Flush(); err != nil {
		return nil, fmt.Errorf("usage: write temporary file: %w", err)
	}
	var h runHeap
	for i, r := range s.runs {
		rr := &runReader{run: i, r: bufio.NewReaderSize(io.NewSectionReader(s.f, r.off, r.n), 16<<10)}
		ok, err := rr.advance()
		if err != nil {
			return nil, err
		}
		if ok {
			h = append(h, rr)
		}
	}
	heap.Init(&h)
	return func() (ledger.ServiceUsage, bool, error) {
		if len(h) == 0 {
			return ledger.ServiceUsage{}, false, nil
		}
		u := h[0].cur
		for {
			ok, err := h[0].advance()
			if err != nil {
				return u, false, err
			}
			if ok {
				heap.Fix(&h, 0)
			} else {
				heap.Pop(&h)
			}
			if len(h) == 0 || h[0].cur.Service != u.Service {
				return u, true, nil
			}
			projection.MergeUsage(&u, h[0].cur)
		}
	}, nil
}

// runReader reads one run; cur is the service it stands at.
type runReader struct {
	run int
	r   *bufio.Reader
	cur ledger.ServiceUsage
}

func (rr *runReader) advance() (bool, error) {
	u, err := readUsage(rr.r)
	if err == io.EOF {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("usage: read temporary file: %w", err)
	}
	rr.cur = u
	return true, nil
}

// runHeap orders the runs' readers by the service they stand at, and the
// parts of one service by run, earlier first.
type runHeap []*runReader

func (h runHeap) Len() int { return len(h) }
func (h runHeap) Less(i, j int) bool {
	if h[i].cur.Service != h[j].cur.Service {
		return h[i].cur.Service < h[j].cur.Service
	}
	return h[i].run < h[j].run
}
func (h runHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *runHeap) Push(x any)   { *h = append(*h, x.(*runReader)) }
func (h *runHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// appendUsage encodes u for the temporary file: the name, the counts as
// varints, then the releases by reason.
func appendUsage(b []byte, u *ledger.ServiceUsage) []byte {
	b = appendString(b, u.Service)
	for _, n := range []int{u.Allocations, u.Holds, u.ImportedHolds, u.HeldAtEnd, u.LongestPort} {
		b = binary.AppendUvarint(b, uint64(n))
	}
	b = binary.AppendVarint(b, int64(u.TotalHold))
	b = binary.AppendVarint(b, int64(u.LongestHold))
	b = binary.AppendUvarint(b, uint64(len(u.Releases)))
	for r, n := range u.Releases {
		b = appendString(b, r)
		b = binary.AppendUvarint(b, uint64(n))
	}
	return b
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

var errBadSpill = errors.New("bad record")

// readUsage decodes what appendUsage wrote; io.EOF at the end of a run.
func readUsage(r *bufio.Reader) (ledger.ServiceUsage, error) {
	var u ledger.ServiceUsage
	var err error
	if u.Service, err = readString(r); err != nil {
		return u, err // io.EOF here is the run's end
	}
	ints := []*int{&u.Allocations, &u.Holds, &u.ImportedHolds, &u.HeldAtEnd, &u.LongestPort}
	for _, p := range ints {
		n, err := binary.ReadUvarint(r)
		if err != nil {
			return u, noEOF(err)
		}
		*p = int(n)
	}
	total, err := binary.ReadVarint(r)
	if err != nil {
		return u, noEOF(err)
	}
	longest, err := binary.ReadVarint(r)
	if err != nil {
		return u, noEOF(err)
	}
	u.TotalHold, u.LongestHold = ledger.Duration(total), ledger.Duration(longest)
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return u, noEOF(err)
	}
	if n > 1<<20 {
		return u, errBadSpill
	}
	u.Releases = make(map[string]int, n)
	for range n {
		reason, err := readString(r)
		if err != nil {
			return u, noEOF(err)
		}
		k, err := binary.ReadUvarint(r)
		if err != nil {
			return u, noEOF(err)
		}
		u.Releases[reason] = int(k)
	}
	return u, nil
}

func readString(r *bufio.Reader) (string, error) {
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return "", err
	}
	if n > 1<<20 {
		return "", errBadSpill
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return "", noEOF(err)
	}
	return string(b), nil
}

// noEOF turns an end of file inside a record into an error of its own.
func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
