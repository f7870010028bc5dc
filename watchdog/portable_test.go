package watchdog

import (
	"context"
	"net"
	"os"
	"strconv"
	"testing"

	"github.com/matryer/is"
)

// The portable paths (gopsutil) are what the watchdog uses on macOS and
// Windows, where sock_diag and /proc do not exist. These tests run them
// here, against real sockets, so the fallbacks are exercised and not only
// compiled.

func TestPortableListingSeesListenersAndTheirOwner(t *testing.T) {
	is := is.New(t)
	ctx := context.Background()
	l4, err := net.Listen("tcp4", "127.0.0.1:0")
	is.NoErr(err) // listen on IPv4
	defer l4.Close()
	port4 := l4.Addr().(*net.TCPAddr).Port
	var port6 int
	if l6, err := net.Listen("tcp6", "[::1]:0"); err == nil {
		defer l6.Close()
		port6 = l6.Addr().(*net.TCPAddr).Port
	}
	c, err := net.Dial("tcp", l4.Addr().String())
	is.NoErr(err) // connect
	defer c.Close()
	outPort := c.LocalAddr().(*net.TCPAddr).Port

	got, err := connListeners(ctx)
	is.NoErr(err)                            // list through gopsutil
	is.Equal(len(got[port4]), 1)             // the IPv4 listener
	is.Equal(got[port4][0].PID, os.Getpid()) // named with its owner at once
	is.Equal(len(got[outPort]), 0)           // not the client side of a connection
	if port6 != 0 {
		is.Equal(len(got[port6]), 1) // the IPv6 listener
	}
	is.NoErr(l4.Close())
	got, err = connListeners(ctx)
	is.NoErr(err)
	is.Equal(len(got[port4]), 0) // gone once closed
}

func TestPortableSocketsOfAPort(t *testing.T) {
	is := is.New(t)
	ctx := context.Background()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	is.NoErr(err) // a TCP listener
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	pc, err := net.ListenPacket("udp4", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Skipf("UDP port %d taken meanwhile: %v", port, err)
	}
	defer pc.Close()

	socks, err := connSockets(ctx, port)
	is.NoErr(err) // through gopsutil
	var tcp, udp int
	for _, s := range socks {
		is.Equal(s.PID, os.Getpid()) // each named with its owner
		is.Equal(s.Family, 4)        // IPv4
		switch s.Proto {
		case "tcp":
			tcp++
		case "udp":
			udp++
		}
	}
	is.Equal(tcp, 1) // the listener
	is.Equal(udp, 1) // the bound UDP socket

	udpPorts, err := connUDPPorts(ctx)
	is.NoErr(err)
	is.True(udpPorts[port]) // the UDP listing sees it too
}
