package projection

import (
	"os"

	"golang.org/x/sys/unix"
)

// startWriteback starts writing the file's pages in [off, off+n) to disk,
// without waiting.
func startWriteback(f *os.File, off, n int64) {
	_ = unix.SyncFileRange(int(f.Fd()), off, n, unix.SYNC_FILE_RANGE_WRITE)
}

// dropWritten waits until the file's pages in [off, off+n) (n 0: to the end)
// are on disk and drops them from the page cache.
func dropWritten(f *os.File, off, n int64) {
	fd := int(f.Fd())
	if unix.SyncFileRange(fd, off, n, unix.SYNC_FILE_RANGE_WAIT_BEFORE|unix.SYNC_FILE_RANGE_WRITE|unix.SYNC_FILE_RANGE_WAIT_AFTER) != nil {
		return
	}
	_ = unix.Fadvise(fd, off, n, unix.FADV_DONTNEED)
}
