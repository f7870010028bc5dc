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
// chunk's writeback is started as it is written and the chunk before it is
// waited for and dropped from the page cache, so that the next chunk reuses
// its pages. The files are not fsynced either way (files.go): this changes
// only what stays in memory, and paces the catch-up at the disk's speed.

// behind is the last full chunk a catch-up wrote, whose writeback has been
// started and whose pages are still cached. Only the catch-up's write
// goroutine and closeDay, which runs after that goroutine is done, use it.
type behind struct {
	file    *os.File
	off, n  int64
	dropped int // chunks waited for and dropped, for the tests
}

// wrote is called after a full chunk of n bytes was appended to file: it
// starts the chunk's writeback, and waits for and drops the chunk before it
// in the same file.
func (b *behind) wrote(file *os.File, n int) {
	end, err := file.Seek(0, io.SeekCurrent) // the file is in append mode: its end
	if err != nil {
		return
	}
	startWriteback(file, end-int64(n), int64(n))
	if b.file == file {
		dropWritten(file, b.off, b.n)
		b.dropped++
	}
	b.file, b.off, b.n = file, end-int64(n), int64(n)
}

// closing is called before file is closed: what is left of it behind the
// catch-up is waited for and dropped.
func (b *behind) closing(file *os.File) {
	if b.file != file || file == nil {
		return
	}
	dropWritten(file, 0, 0)
	b.file = nil
}
