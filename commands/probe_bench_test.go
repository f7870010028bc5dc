package commands_test

import (
	"net"
	"testing"

	"github.com/portledger/portledger/commands"
)

// BenchmarkProbePort is the cost of one probe of a free port, which every
// allocation pays.
func BenchmarkProbePort(b *testing.B) {
	ln, err := net.Listen("tcp", ":0")
	if err != nil {
		b.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	_ = ln.Close()
	b.ReportAllocs()
	for b.Loop() {
		if err := commands.ProbePort(port); err != nil {
			b.Fatal(err)
		}
	}
}
