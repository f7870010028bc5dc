//go:build linux

package watchdog

import (
	"context"
	"syscall"
)

// portSockets asks sock_diag for the TCP listeners and UDP sockets on port
// and searches /proc for their owners, the processes with the fewest open
// files first; where sock_diag is not allowed it
// falls back to gopsutil.
func portSockets(ctx context.Context, port int) ([]Socket, error) {
	var out []Socket
	add := func(proto string) func(diagSocket) {
		return func(s diagSocket) {
			if s.port != port || (proto == "tcp" && s.state != tcpStateListen) {
				return
			}
			fam := 4
			if s.family == syscall.AF_INET6 {
				fam = 6
			}
			out = append(out, Socket{Proto: proto, Family: fam, Addr: s.addr.String(), Port: port, UID: int(s.uid), Inode: s.inode})
		}
	}
	if err := diagDump(syscall.IPPROTO_TCP, 1<<tcpStateListen, add("tcp")); err != nil {
		return connSockets(ctx, port)
	}
	if err := diagDump(syscall.IPPROTO_UDP, allStates, add("udp")); err != nil {
		return connSockets(ctx, port)
	}
	if len(out) == 0 {
		return out, nil
	}
	want := make(map[uint64]bool, len(out))
	for _, s := range out {
		want[s.Inode] = true
	}
	owners := searchOwners(ctx, want, true)
	for i := range out {
		out[i].PID = owners[out[i].Inode]
	}
	return out, ctx.Err()
}

// listUDP returns the local ports of the machine's UDP sockets.
func listUDP(ctx context.Context) (map[int]bool, error) {
	out := make(map[int]bool)
	if err := diagUDPPorts(out); err != nil {
		return connUDPPorts(ctx)
	}
	return out, nil
}
