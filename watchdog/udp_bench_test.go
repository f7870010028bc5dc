package watchdog

import (
	"context"
	"testing"
)

// BenchmarkListUDP is what a sweep adds to learn which ports have a bound
// UDP socket; BenchmarkListing's sock_diag case is the TCP listing beside it.
func BenchmarkListUDP(b *testing.B) {
	for b.Loop() {
		if _, err := listUDP(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
}
