package ledger

import "time"

// WriteStats are bbolt's counts of the log's write transactions since the
// log was opened: what its commits cost the disk, for benchmarks.
type WriteStats struct {
	Pages     int64         // pages allocated (the dirty pages written and the file's growth)
	Writes    int64         // page writes to the file
	WriteTime time.Duration // time spent writing them, fsync not included
	Splits    int64         // nodes split
	Spills    int64         // nodes spilled
}

// WriteStats returns the log's write counts since it was opened.
func (l *Log) WriteStats() WriteStats {
	s := l.db.Stats().TxStats
	return WriteStats{Pages: s.GetPageCount(), Writes: s.GetWrite(), WriteTime: s.GetWriteTime(), Splits: s.GetSplit(), Spills: s.GetSpill()}
}
