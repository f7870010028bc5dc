package ledger

import (
	"os"

	"golang.org/x/sys/unix"
)

// readAheadWindow is how much of the file one read-ahead request names:
// the kernel reads only a few megabytes of a longer one.
const readAheadWindow = 8 << 20

// readAhead asks the kernel to read the file at path into the page cache,
// a window at a time from the start, on a goroutine of its own, while the
// caller reads the log (Options.ReadAhead). A file it cannot open is left
// alone; Open says what is wrong with it.
func readAhead(path string) {
	f, err := os.Open(path)
	if err != nil {
		return
	}
	go func() {
		defer f.Close()
		info, err := f.Stat()
		if err != nil {
			return
		}
		for off := int64(0); off < info.Size(); off += readAheadWindow {
			if unix.Fadvise(int(f.Fd()), off, readAheadWindow, unix.FADV_WILLNEED) != nil {
				return
			}
		}
	}()
}
