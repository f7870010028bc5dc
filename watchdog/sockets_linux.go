//go:build linux

package watchdog

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"
)

// procRoot is where Linux shows processes and sockets.
const procRoot = "/proc"

// listListeners asks the kernel for the listening TCP sockets through
// sock_diag, and reads /proc/net/tcp{,6} where that is not allowed. Either
// is one query per sweep, against gopsutil's walk over every file descriptor
// of every process; owners are resolved later, only where needed.
func listListeners(ctx context.Context) (listing, error) {
	out := make(listing)
	if err := diagListeners(out); err == nil {
		return out, ctx.Err()
	}
	clear(out)
	return procListeners(ctx, out)
}

// procListeners reads the listening sockets from /proc/net/tcp and
// /proc/net/tcp6 into out.
func procListeners(ctx context.Context, out listing) (listing, error) {
	b, err := os.ReadFile(procRoot + "/net/tcp")
	if err != nil {
		return nil, err
	}
	if err := parseProcNetTCP(b, out); err != nil {
		return nil, err
	}
	b, err = os.ReadFile(procRoot + "/net/tcp6")
	switch {
	case errors.Is(err, fs.ErrNotExist): // no IPv6 on this machine
	case err != nil:
		return nil, err
	default:
		if err := parseProcNetTCP(b, out); err != nil {
			return nil, err
		}
	}
	return out, ctx.Err()
}

// tcpListen is the state code of a listening socket in /proc/net/tcp.
const tcpListen = "0A"

// parseProcNetTCP adds the listening sockets of one /proc/net/tcp{,6} table
// to out. A line looks like
//
//	0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000  0 123456 1 ...
//
// where field 1 is the local address with the port in hex, field 3 the state
// and field 9 the socket inode.
func parseProcNetTCP(b []byte, out listing) error {
	_, b, _ = bytes.Cut(b, []byte("\n")) // the header
	for len(b) > 0 {
		var line []byte
		line, b, _ = bytes.Cut(b, []byte("\n"))
		var f [10][]byte
		n := 0
		for n < len(f) {
			line = bytes.TrimLeft(line, " ")
			if len(line) == 0 {
				break
			}
			i := bytes.IndexByte(line, ' ')
			if i < 0 {
				i = len(line)
			}
			f[n], line = line[:i], line[i:]
			n++
		}
		if n == 0 {
			continue
		}
		if n < len(f) {
			return errors.New("/proc/net/tcp: short line")
		}
		if string(f[3]) != tcpListen {
			continue
		}
		_, hexPort, ok := bytes.Cut(f[1], []byte(":"))
		if !ok {
			return errors.New("/proc/net/tcp: bad local address")
		}
		port, err := strconv.ParseUint(string(hexPort), 16, 16)
		if err != nil {
			return errors.New("/proc/net/tcp: bad port")
		}
		inode, err := strconv.ParseUint(string(f[9]), 10, 64)
		if err != nil {
			return errors.New("/proc/net/tcp: bad inode")
		}
		out[int(port)] = append(out[int(port)], listener{Inode: inode})
	}
	return nil
}

// socketOwners searches the open files of every process for the wanted
// socket inodes and returns the PID holding each one it finds. A socket
// shared by several processes (inherited across fork) goes to the lowest
// PID. Processes whose files we may not read are skipped.
func socketOwners(ctx context.Context, want map[uint64]bool) map[uint64]int {
	return searchOwners(ctx, want, false)
}

// procFDs is one process's open file descriptors, by name.
type procFDs struct {
	pid int
	fds []string
}

// searchOwners is socketOwners in one of two orders. In PID order (the
// watchdog's) a socket shared across fork goes to the parent. With
// fewestFirst the processes with the fewest open files are searched first,
// newest first among equals: a service's listener is usually in a small
// process, and the few that hold thousands of sockets (a proxy, a load
// generator) are read last, when the answer is likely found already.
func searchOwners(ctx context.Context, want map[uint64]bool, fewestFirst bool) map[uint64]int {
	found := make(map[uint64]int, len(want))
	ents, err := os.ReadDir(procRoot)
	if err != nil {
		return found
	}
	pids := make([]int, 0, len(ents))
	for _, e := range ents {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			pids = append(pids, pid)
		}
	}
	slices.Sort(pids)
	procs := make([]procFDs, 0, len(pids))
	for _, pid := range pids {
		f, err := os.Open(procRoot + "/" + strconv.Itoa(pid) + "/fd")
		if err != nil {
			continue
		}
		fds, err := f.Readdirnames(-1) // unsorted: cheaper than ReadDir
		f.Close()
		if err == nil {
			procs = append(procs, procFDs{pid: pid, fds: fds})
		}
	}
	if fewestFirst {
		slices.SortStableFunc(procs, func(a, b procFDs) int {
			if len(a.fds) != len(b.fds) {
				return len(a.fds) - len(b.fds)
			}
			return b.pid - a.pid
		})
	}
	for _, p := range procs {
		if ctx.Err() != nil || len(found) == len(want) {
			break
		}
		dir := procRoot + "/" + strconv.Itoa(p.pid) + "/fd/"
		for _, fd := range p.fds {
			link, err := os.Readlink(dir + fd)
			if err != nil || !strings.HasPrefix(link, "socket:[") {
				continue
			}
			inode, err := strconv.ParseUint(strings.TrimSuffix(link[len("socket:["):], "]"), 10, 64)
			if err != nil || !want[inode] {
				continue
			}
			if _, ok := found[inode]; !ok {
				found[inode] = p.pid
			}
			if len(found) == len(want) {
				break
			}
		}
	}
	return found
}
