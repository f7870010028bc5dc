package watchdog

import (
	"context"
	"net"
	"strconv"
	"time"
)

// listener is one listening TCP socket of the machine.
type listener struct {
	Inode uint64 // the socket's inode where the OS names it (Linux), else 0
	PID   int    // the owning process; 0 until resolved or when unknown
}

// listing is one snapshot of the machine's listening TCP sockets, by port.
type listing map[int][]listener

// socketTable takes the per-sweep listing and remembers, across sweeps, which
// process owns which socket, so the costly owner search runs only for sockets
// it has not seen before. It is used under the watchdog's sweep lock.
type socketTable struct {
	owners map[uint64]int // socket inode -> owning PID (0: searched twice, not found)
	misses map[uint64]int // socket inode -> searches that did not find its owner
}

func newSocketTable() *socketTable {
	return &socketTable{owners: make(map[uint64]int), misses: make(map[uint64]int)}
}

// list returns the listening sockets of the machine, IPv4 and IPv6.
func (t *socketTable) list(ctx context.Context) (listing, error) {
	l, err := listListeners(ctx)
	if err != nil {
		return nil, err
	}
	// Forget owners of sockets that are gone, so a recycled inode cannot
	// be attributed to an old owner.
	live := make(map[uint64]bool)
	for _, ls := range l {
		for _, s := range ls {
			if s.Inode != 0 {
				live[s.Inode] = true
			}
		}
	}
	for ino := range t.owners {
		if !live[ino] {
			delete(t.owners, ino)
		}
	}
	for ino := range t.misses {
		if !live[ino] {
			delete(t.misses, ino)
		}
	}
	return l, nil
}

// resolve fills in the owning PID of the given sockets, from memory where it
// can and by one search of the process table for the rest.
func (t *socketTable) resolve(ctx context.Context, socks []listener) []listener {
	var want map[uint64]bool
	for i, s := range socks {
		if s.PID != 0 || s.Inode == 0 {
			continue
		}
		if pid, ok := t.owners[s.Inode]; ok {
			socks[i].PID = pid
			continue
		}
		if want == nil {
			want = make(map[uint64]bool)
		}
		want[s.Inode] = true
	}
	if len(want) == 0 {
		return socks
	}
	found := socketOwners(ctx, want)
	for ino := range want {
		if pid, ok := found[ino]; ok {
			t.owners[ino] = pid
			delete(t.misses, ino)
			continue
		}
		// Not found: closed since the listing, or owned by a process
		// whose files we may not read. Search again next sweep, but not
		// forever.
		t.misses[ino]++
		if t.misses[ino] >= 2 {
			t.owners[ino] = 0
		}
	}
	for i, s := range socks {
		if socks[i].PID == 0 {
			socks[i].PID = t.owners[s.Inode]
		}
	}
	return socks
}

// unresolvedBefore reports whether the owner of the socket was searched for
// in an earlier sweep too, without success: it is a lasting listener whose
// owner we cannot name, not a socket that closed during the search.
func (t *socketTable) unresolvedBefore(inode uint64) bool {
	return t.misses[inode] >= 2
}

// dialListening says whether something accepts TCP connections on
// 127.0.0.1:port. It is the fallback for a sweep whose listing failed.
func dialListening(ctx context.Context, port int, timeout time.Duration) bool {
	d := net.Dialer{Timeout: timeout}
	c, err := d.DialContext(ctx, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return false
	}
	_ = c.Close()
	return true
}
