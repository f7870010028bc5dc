//go:build !linux

package watchdog

import (
	"context"

	"github.com/shirou/gopsutil/v3/net"
)

// listListeners asks gopsutil for the listening TCP sockets (IPv4 and IPv6)
// with their owners.
func listListeners(ctx context.Context) (listing, error) {
	conns, err := net.ConnectionsWithContext(ctx, "tcp")
	if err != nil {
		return nil, err
	}
	out := make(listing)
	for _, c := range conns {
		if c.Status != "LISTEN" {
			continue
		}
		port := int(c.Laddr.Port)
		out[port] = append(out[port], listener{PID: int(c.Pid)})
	}
	return out, nil
}

// socketOwners is never needed here: gopsutil names the owners in the
// listing itself.
func socketOwners(ctx context.Context, want map[uint64]bool) map[uint64]int {
	return map[uint64]int{}
}

// portSockets asks gopsutil, which names the owners too.
func portSockets(ctx context.Context, port int) ([]Socket, error) {
	return connSockets(ctx, port)
}

// listUDP returns the local ports of the machine's UDP sockets.
func listUDP(ctx context.Context) (map[int]bool, error) {
	return connUDPPorts(ctx)
}
