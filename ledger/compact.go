package ledger

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

// CompactResult says what Compact did.
type CompactResult struct {
	Path        string `json:"path"`
	BytesBefore int64  `json:"bytes_before"`
	BytesAfter  int64  `json:"bytes_after"`
	Keys        int64  `json:"keys"` // keys copied and checked, in every bucket
	// Kept is where the file before compaction was left, when asked to
	// keep it.
	Kept string `json:"kept,omitempty"`
}

// compactTxMax bounds one transaction of the copy, so that a large log is
// copied in steps instead of in one transaction the size of the file.
const compactTxMax = 64 << 20

// Compact gives back the space that bbolt keeps inside the file (the pages
// freed when the port index's tail is merged into by_port, and the slack of half-full
// pages) by copying the log into a fresh file with full pages and putting it
// in place of the original. It is an offline step: it holds the file's lock
// throughout, so it fails with ErrLocked while a daemon or another command
// has the log open. The copy is compared key by key and value by value with
// the original before it replaces it, so no answer changes; on any error
// the original is left as it was. keep names where to leave the original
// ("" removes it).
func Compact(path string, timeout time.Duration, keep string) (CompactResult, error) {
	res := CompactResult{Path: path}
	if timeout <= 0 {
		timeout = DefaultLockTimeout
	}
	info, err := os.Stat(path)
	if err != nil {
		return res, fmt.Errorf("compact: %w", err)
	}
	res.BytesBefore = info.Size()
	if err := checkFile(path, timeout); err != nil {
		return res, openError(path, timeout, err)
	}
	src, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: timeout, FreelistType: freelistType})
	if err != nil {
		return res, openError(path, timeout, err)
	}
	defer src.Close()
	if err := checkBuckets(src); err != nil {
		return res, fmt.Errorf("compact %s: %w", path, err)
	}
	readAhead(path) // the copy reads every page

	tmp := path + ".compact"
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return res, fmt.Errorf("compact: %w", err)
	}
	dst, err := bolt.Open(tmp, 0o600, &bolt.Options{FreelistType: freelistType})
	if err != nil {
		return res, fmt.Errorf("compact: %w", err)
	}
	fail := func(err error) (CompactResult, error) {
		dst.Close()
		os.Remove(tmp)
		return res, fmt.Errorf("compact %s: %w", path, err)
	}
	if err := bolt.Compact(dst, src, compactTxMax); err != nil {
		return fail(err)
	}
	n, err := sameContent(src, dst)
	if err != nil {
		return fail(err)
	}
	res.Keys = n
	if err := dst.Sync(); err != nil {
		return fail(err)
	}
	if err := dst.Close(); err != nil {
		os.Remove(tmp)
		return res, fmt.Errorf("compact %s: %w", path, err)
	}
	if keep != "" {
		if err := os.Link(path, keep); err != nil {
			os.Remove(tmp)
			return res, fmt.Errorf("compact: keep the original: %w", err)
		}
		res.Kept = keep
	}
	// The rename happens while src still holds the lock on the old file;
	// Open checks that the file it locked is still the one at path, so a
	// process that waited for the lock opens the compacted file.
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return res, fmt.Errorf("compact: %w", err)
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		return res, fmt.Errorf("compact: %w", err)
	}
	if info, err := os.Stat(path); err == nil {
		res.BytesAfter = info.Size()
	}
	return res, nil
}

// checkBuckets refuses a file that is not a ledger before it is copied.
func checkBuckets(db *bolt.DB) error {
	return db.View(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketEvents, bucketByPort, bucketSnapshots, bucketMeta} {
			if tx.Bucket(name) == nil {
				return fmt.Errorf("%w: no bucket %q", ErrCorrupt, name)
			}
		}
		return nil
	})
}

// sameContent compares every bucket of a and b, key by key and value by
// value (nested buckets included), and returns the number of keys.
func sameContent(a, b *bolt.DB) (int64, error) {
	var n int64
	err := a.View(func(ta *bolt.Tx) error {
		return b.View(func(tb *bolt.Tx) error {
			var names [][]byte
			if err := ta.ForEach(func(name []byte, _ *bolt.Bucket) error {
				names = append(names, name)
				return nil
			}); err != nil {
				return err
			}
			count := 0
			if err := tb.ForEach(func([]byte, *bolt.Bucket) error { count++; return nil }); err != nil {
				return err
			}
			if count != len(names) {
				return fmt.Errorf("the copy has %d buckets, the original %d", count, len(names))
			}
			for _, name := range names {
				bb := tb.Bucket(name)
				if bb == nil {
					return fmt.Errorf("the copy has no bucket %q", name)
				}
				k, err := sameBucket(ta.Bucket(name), bb, string(name))
				n += k
				if err != nil {
					return err
				}
			}
			return nil
		})
	})
	return n, err
}

func sameBucket(a, b *bolt.Bucket, path string) (int64, error) {
	var n int64
	ca, cb := a.Cursor(), b.Cursor()
	ka, va := ca.First()
	kb, vb := cb.First()
	for ; ka != nil || kb != nil; ka, va, kb, vb = next4(ca, cb) {
		if !bytes.Equal(ka, kb) || !bytes.Equal(va, vb) {
			return n, fmt.Errorf("bucket %s differs at key %x", path, ka)
		}
		n++
		if va == nil { // a nested bucket
			sa, sb := a.Bucket(ka), b.Bucket(kb)
			if sa == nil || sb == nil {
				return n, fmt.Errorf("bucket %s: nested bucket %x missing", path, ka)
			}
			k, err := sameBucket(sa, sb, fmt.Sprintf("%s/%x", path, ka))
			n += k
			if err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

func next4(ca, cb *bolt.Cursor) (ka, va, kb, vb []byte) {
	ka, va = ca.Next()
	kb, vb = cb.Next()
	return
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
