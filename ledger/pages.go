package ledger

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"os"

	bolt "go.etcd.io/bbolt"
)

// bbolt's on-disk layout, as far as checkPages reads it: a page header of
// 16 bytes (id, flags, count, overflow), then on the two meta pages the
// meta: magic, version, page size, flags, the root bucket (root page,
// sequence), the freelist page, the high-water page, the transaction ID and
// an FNV-64a checksum of the meta's bytes before it. Integers are in the
// machine's byte order.
const (
	pageHeaderSize   = 16
	metaSize         = 56 // up to the checksum
	metaMagic        = 0xED0CDAED
	freelistPageFlag = 0x10
	noFreelist       = ^uint64(0)
)

// checkPages refuses a file whose current meta page names a freelist page
// that is not one. bbolt reads that page when it opens a file for writing
// and panics on a bad one, so the check runs before.
func checkPages(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	var best []byte
	var bestTx uint64
	hdr := make([]byte, pageHeaderSize+metaSize+8)
	pageSize := int64(0)
	for i := int64(0); i < 2; i++ {
		if _, err := f.ReadAt(hdr, i*pageSize); err != nil {
			continue
		}
		m := hdr[pageHeaderSize:]
		if binary.NativeEndian.Uint32(m[0:]) != metaMagic {
			continue
		}
		h := fnv.New64a()
		_, _ = h.Write(m[:metaSize])
		if h.Sum64() != binary.NativeEndian.Uint64(m[metaSize:]) {
			continue
		}
		if i == 0 {
			pageSize = int64(binary.NativeEndian.Uint32(m[8:]))
		}
		if tx := binary.NativeEndian.Uint64(m[48:]); best == nil || tx > bestTx {
			best, bestTx = append([]byte(nil), m...), tx
		}
		if pageSize == 0 {
			break
		}
	}
	if best == nil || pageSize == 0 {
		return nil // bbolt's own open judges the meta pages
	}
	freelist, high := binary.NativeEndian.Uint64(best[32:]), binary.NativeEndian.Uint64(best[40:])
	if freelist == noFreelist {
		return nil
	}
	if freelist >= high {
		return fmt.Errorf("%w: freelist page %d past the last page %d", ErrCorrupt, freelist, high)
	}
	flags := make([]byte, 2)
	if _, err := f.ReadAt(flags, int64(freelist)*pageSize+8); err != nil {
		return fmt.Errorf("%w: freelist page %d: %v", ErrCorrupt, freelist, err)
	}
	if got := binary.NativeEndian.Uint16(flags); got != freelistPageFlag {
		return fmt.Errorf("%w: page %d should be the freelist but has type %#x", ErrCorrupt, freelist, got)
	}
	return nil
}

// touchBuckets reads the first and last key of every bucket, so that a
// file whose tree pages are overwritten is refused at open instead of
// panicking later. bbolt panics on a page of the wrong type.
func touchBuckets(db *bolt.DB) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("%w: %v", ErrCorrupt, v)
		}
	}()
	return db.View(func(tx *bolt.Tx) error {
		for _, name := range append(allBuckets, bucketServices, bucketPortTail, bucketEventsTail) {
			if b := tx.Bucket(name); b != nil {
				c := b.Cursor()
				c.First()
				c.Last()
			}
		}
		return nil
	})
}
