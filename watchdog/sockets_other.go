//go:build !linux

package watchdog

import "context"

// listListeners asks gopsutil (see connListeners).
func listListeners(ctx context.Context) (listing, error) { return connListeners(ctx) }

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
