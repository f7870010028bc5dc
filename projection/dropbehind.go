package projection

import (
	"io"
	"os"
)

// A long catch-up (a replay, or a start without the files) writes gigabytes
// of JSONL. Left to the page cache, every chunk takes fresh pages that the
// copy into them must first fault in, and the kernel throttles the writer
// when the dirty pages pile up: on the 2-core development machine, 2.9 GB
// written plainly cost 5.3-6.5 s of system time, and 1.2-1.3 s when each
// chunk's writeback is started as it is written and the chunks a few behind
// it are waited for and dropped from the page cache, so that the next
// chunks reuse their pages. The files are not fsynced either way
// (files.go): this changes only what stays in memory, and paces the
// catch-up at the disk's speed.

// behind is the full chunks a catch-up wrote last, whose writeback has been
// started and whose pages are still cached, oldest first. Only the
// catch-up's write goroutine and closeDay, which runs after that goroutine
// is done, use it.
type behind struct {
	file    *os.File
	chunks  []chunk // all of file
	dropped int     // chunks waited for and dropped, for the tests
}

// chunk is a byte range of the file being written.
type chunk struct{ off, n int64 }

// behindChunks is how many chunks' writeback may be under way at once, so
// that the disk has a queue to work on while the catch-up waits for the
// oldest; the page cache holds no more than that of a file being written.
// With 1 (the chunk before the one just started), `ledger replay` of the
// 10M-event fixture took 7.7-7.9 s where 8 took 6.5-7.3 s, alternated
// three times in one run (dd of as many bytes: 5.3-5.6 s).
const behindChunks = 8

// wrote is called after a full chunk of n bytes was appended to file: it
// starts the chunk's writeback and, once behindChunks are under way, waits
// for the oldest one and drops it from the page cache.
func (b *behind) wrote(file *os.File, n int) {
	end, err := file.Seek(0, io.SeekCurrent) // the file is in append mode: its end
	if err != nil {
		return
	}
	startWriteback(file, end-int64(n), int64(n))
	if b.file != file {
		b.file, b.chunks = file, b.chunks[:0]
	}
	b.chunks = append(b.chunks, chunk{off: end - int64(n), n: int64(n)})
	if len(b.chunks) > behindChunks {
		c := b.chunks[0]
		dropWritten(file, c.off, c.n)
		b.dropped++
		b.chunks = append(b.chunks[:0], b.chunks[1:]...)
	}
}

// closing is called before file is closed: what is left of it behind the
// catch-up is waited for and dropped.
func (b *behind) closing(file *os.File) {
	if b.file != file || file == nil {
		return
	}
	dropWritten(file, 0, 0)
	b.file, b.chunks = nil, b.chunks[:0]
}
