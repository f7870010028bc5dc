package ledger

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/oklog/ulid/v2"
	bolt "go.etcd.io/bbolt"
)

// The entries of by_port.
//
// An entry's key is the 2-byte port and an ID. Its value is one of:
//
//   - blockTag and then up to DefaultPortIndexBlock-1 more IDs of the same
//     port, 16 bytes each, in order, all after the key's and before the
//     next entry's: a block. A block costs 16 bytes an event, where an entry
//     per event cost its 18-byte key and bbolt's 16-byte element header.
//   - nothing: the key's ID alone (files of earlier versions).
//   - the encoded event of the key's ID, a copy (files of older versions).
//
// The merge appends the tail's IDs to each port's last block and starts new
// ones; an import into the past adds its ID to the block that covers it,
// splitting a full one in two.

// blockTag starts the value of a by_port block. An encoded event, the only
// other value, starts with codecVersion.
const blockTag = 0xB1

// DefaultPortIndexBlock is the default of Options.PortIndexBlock. A block
// of 24 IDs is an 18-byte key and a 369-byte value, 403 bytes with bbolt's
// element header: ten fit a page, and bbolt, which splits a leaf leaving at
// least two elements for the second page, leaves nine on each page a
// port's merges fill, 216 IDs. Blocks of 32 (531 bytes) left six, 192 IDs:
// by_port took 22.4 bytes an event of the 10M-event fixture with blocks of
// 32, and takes 20.4 with 24.
const DefaultPortIndexBlock = 24

// entryIDs appends the IDs of the by_port entry k, v to dst, oldest first.
// copy is the event of an entry that holds a copy of it, else nil.
func entryIDs(dst []ulid.ULID, k, v []byte) (ids []ulid.ULID, copy []byte, err error) {
	if len(k) != 18 {
		return dst, nil, fmt.Errorf("%w: by_port key %x", ErrCorrupt, k)
	}
	dst = append(dst, ulid.ULID(k[2:]))
	switch {
	case len(v) == 0:
		return dst, nil, nil
	case v[0] == blockTag:
		if (len(v)-1)%16 != 0 {
			return dst, nil, fmt.Errorf("%w: by_port block %x is %d bytes", ErrCorrupt, k, len(v))
		}
		for i := 1; i < len(v); i += 16 {
			dst = append(dst, ulid.ULID(v[i:i+16]))
		}
		return dst, nil, nil
	}
	return dst, v, nil
}

// entryPort returns the port of a by_port key.
func entryPort(k []byte) int { return int(binary.BigEndian.Uint16(k)) }

// blockValue encodes the IDs after a block's first.
func blockValue(rest []ulid.ULID) []byte {
	v := make([]byte, 1, 1+16*len(rest))
	v[0] = blockTag
	for _, id := range rest {
		v = append(v, id[:]...)
	}
	return v
}

// entryAtOrBefore positions c on the by_port entry of port whose key is
// the last at or before port and id: the block that would hold id. It
// returns nil when port has no entry there.
func entryAtOrBefore(c *bolt.Cursor, port int, id ulid.ULID) (k, v []byte) {
	seek := portKey(port, id)
	k, v = c.Seek(seek)
	if k == nil || bytes.Compare(k, seek) > 0 {
		k, v = c.Prev()
	}
	if k == nil || len(k) < 2 || entryPort(k) != port {
		return nil, nil
	}
	return k, v
}

// lastEntry positions c on the newest by_port entry of port, if any.
func lastEntry(c *bolt.Cursor, port int) (k, v []byte) {
	if k, v = entryAtOrBefore(c, port, maxID); len(k) != 18 {
		return nil, nil
	}
	return k, v
}

// maxID is the greatest ULID.
var maxID = ulid.ULID{0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}

// appendToPort adds ids, oldest first and all newer than every ID of port
// in b, to the port's last block and to new blocks of at most size IDs.
func appendToPort(b *bolt.Bucket, port int, ids []ulid.ULID, size int) error {
	if k, v := lastEntry(b.Cursor(), port); k != nil && (len(v) == 0 || v[0] == blockTag) {
		have, _, err := entryIDs(nil, k, v)
		if err != nil {
			return err
		}
		if take := min(size-len(have), len(ids)); take > 0 {
			if err := b.Put(bytes.Clone(k), blockValue(append(have[1:], ids[:take]...))); err != nil {
				return err
			}
			ids = ids[take:]
		}
	}
	for len(ids) > 0 {
		take := min(size, len(ids))
		if err := b.Put(portKey(port, ids[0]), blockValue(ids[1:take])); err != nil {
			return err
		}
		ids = ids[take:]
	}
	return nil
}

// insertIntoPort adds id, older than some ID of port already in b, to the
// block that covers it, splitting the block in two when it is full; an ID
// older than the port's first block gets a block of its own.
func insertIntoPort(b *bolt.Bucket, port int, id ulid.ULID, size int) error {
	k, v := entryAtOrBefore(b.Cursor(), port, id)
	if len(k) != 18 || (len(v) > 0 && v[0] != blockTag) {
		return b.Put(portKey(port, id), blockValue(nil))
	}
	ids, _, err := entryIDs(nil, k, v)
	if err != nil {
		return err
	}
	i, found := slices.BinarySearchFunc(ids, id, ulid.ULID.Compare)
	if found {
		return nil // indexed already
	}
	ids = slices.Insert(ids, i, id)
	key := bytes.Clone(k)
	if len(ids) <= size {
		return b.Put(key, blockValue(ids[1:]))
	}
	h := len(ids) / 2
	if err := b.Put(key, blockValue(ids[1:h])); err != nil {
		return err
	}
	return b.Put(portKey(port, ids[h]), blockValue(ids[h+1:]))
}
