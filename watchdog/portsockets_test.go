package watchdog_test

import (
	"context"
	"io"
	"net"
	"os"
	"strconv"
	"testing"

	"github.com/matryer/is"
	"github.com/portledger/portledger/commands"
	"github.com/portledger/portledger/ledger"
	"github.com/portledger/portledger/watchdog"
)

// socketCase is a real socket the test opens on a port: a TCP listener or a
// bound UDP socket, on one address.
type socketCase struct {
	name   string
	proto  string // "tcp" or "udp"
	addr   string // the address to bind
	family int
}

var socketCases = []socketCase{
	{"tcp on 127.0.0.1", "tcp", "127.0.0.1", 4},
	{"tcp on ::1 only", "tcp", "::1", 6},
	{"tcp on [::]", "tcp", "::", 6},
	{"udp on 127.0.0.1", "udp", "127.0.0.1", 4},
	{"udp on ::1 only", "udp", "::1", 6},
}

// open binds the case's socket on port and closes it when the test ends. It
// skips the test where the machine has no IPv6 loopback.
func (c socketCase) open(t *testing.T, port int) {
	t.Helper()
	hp := net.JoinHostPort(c.addr, strconv.Itoa(port))
	var closer io.Closer
	var err error
	network := c.proto + strconv.Itoa(c.family)
	if c.proto == "tcp" {
		closer, err = net.Listen(network, hp)
	} else {
		closer, err = net.ListenPacket(network, hp)
	}
	if err != nil && c.family == 6 {
		t.Skipf("no IPv6 here: %v", err)
	}
	if err != nil {
		t.Fatalf("bind %s %s: %v", network, hp, err)
	}
	t.Cleanup(func() { closer.Close() })
}

func TestPortSocketsNamesEachFamilyAndProtocol(t *testing.T) {
	for i, c := range socketCases {
		t.Run(c.name, func(t *testing.T) {
			is := is.New(t)
			port := 23100 + i
			c.open(t, port)
			socks, err := watchdog.PortSockets(context.Background(), port)
			is.NoErr(err)           // list the port's sockets
			is.Equal(len(socks), 1) // exactly the test's socket
			s := socks[0]
			is.Equal(s.Proto, c.proto)                                           // its protocol
			is.Equal(s.Family, c.family)                                         // its family
			is.Equal(s.Addr, c.addr)                                             // its address
			is.Equal(s.PID, os.Getpid())                                         // its owner: this test process
			is.Equal(s.UID, os.Getuid())                                         // and the owner's user
			is.Equal(s.Endpoint(), net.JoinHostPort(c.addr, strconv.Itoa(port))) // rendered for people
		})
	}
	t.Run("free port", func(t *testing.T) {
		is := is.New(t)
		socks, err := watchdog.PortSockets(context.Background(), 23199)
		is.NoErr(err)           // list
		is.Equal(len(socks), 0) // nothing there
	})
}

// TestEveryFamilyAndUDPCountsAsListening checks that a service listening on
// ::1 or [::] only, or serving UDP on a bound socket, is healthy like one on
// 127.0.0.1.
func TestEveryFamilyAndUDPCountsAsListening(t *testing.T) {
	for i, c := range socketCases {
		t.Run(c.name, func(t *testing.T) {
			is := is.New(t)
			ctx := context.Background()
			port := 23120 + i
			svc := mustLedger(t, ledger.Range{Lo: port, Hi: port}, commands.Config{})
			a, err := svc.Allocate(ctx, ledger.AllocateRequest{ServiceName: "svc"})
			is.NoErr(err) // allocate
			c.open(t, port)
			w := watchdog.New(svc, fast())
			res, err := w.Sweep(ctx)
			is.NoErr(err)               // sweep
			is.Equal(len(res.Ports), 1) // one allocation
			is.Equal(res.Ports[0].Port, a.Port)
			is.True(res.Ports[0].Listening) // the socket counts as listening
			is.Equal(len(res.Conflicts), 0) // and is no conflict
		})
	}
}
