package commands

import (
	"net"
	"testing"

	"github.com/matryer/is"
)

// TestBothProbesSeeEveryAddress runs the Linux probe (raw system calls) and
// the portable one (net.Listen, what macOS and Windows use) against real
// listeners on every address, so the fallback is exercised here too.
func TestBothProbesSeeEveryAddress(t *testing.T) {
	probes := []struct {
		name  string
		probe func(int) error
	}{
		{"this system's probe", probePort},
		{"portable probe", listenProbe},
	}
	for _, p := range probes {
		for _, host := range []string{"127.0.0.1", "0.0.0.0", "[::1]", "[::]"} {
			t.Run(p.name+" "+host, func(t *testing.T) {
				is := is.New(t)
				ln, err := net.Listen("tcp", host+":0")
				if err != nil {
					t.Skipf("no %s on this machine: %v", host, err)
				}
				defer ln.Close()
				port := ln.Addr().(*net.TCPAddr).Port
				is.True(p.probe(port) != nil) // a port held on this address is not free
				ln.Close()
				is.NoErr(p.probe(port)) // and free once let go
			})
		}
	}
}
