package commands_test

import (
	"context"
	"net"
	"strconv"
	"testing"

	"github.com/matryer/is"
	"github.com/portledger/portledger/commands"
	"github.com/portledger/portledger/ledger"
)

func TestProbeUDPSeesEveryAddress(t *testing.T) {
	for _, host := range []string{"127.0.0.1", "0.0.0.0", "::1", "::"} {
		t.Run(host, func(t *testing.T) {
			is := is.New(t)
			c, err := net.ListenPacket("udp", net.JoinHostPort(host, "0"))
			if err != nil {
				t.Skipf("no %s on this machine: %v", host, err)
			}
			defer c.Close()
			port := c.LocalAddr().(*net.UDPAddr).Port
			is.True(commands.ProbeUDPPort(port) != nil) // a port bound on this address is not free for UDP
			c.Close()
			is.NoErr(commands.ProbeUDPPort(port)) // and free once let go
		})
	}
}

// TestAllocateByProtocol allocates from a range whose lowest port has a
// UDP socket bound and whose second port a TCP listener: each protocol
// skips the ports its sockets cannot have.
func TestAllocateByProtocol(t *testing.T) {
	cases := []struct {
		name  string
		proto ledger.Proto
		want  int // offset from the range's start
	}{
		{"tcp by default", "", 0},
		{"tcp", ledger.ProtoTCP, 0},
		{"udp", ledger.ProtoUDP, 1},
		{"both", ledger.ProtoBoth, 2},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			is := is.New(t)
			lo := 24500 + 10*i
			u, err := net.ListenPacket("udp4", "127.0.0.1:"+strconv.Itoa(lo))
			is.NoErr(err) // bind UDP on the first port
			defer u.Close()
			ln, err := net.Listen("tcp4", "127.0.0.1:"+strconv.Itoa(lo+1))
			is.NoErr(err) // listen on TCP on the second
			defer ln.Close()
			l := openRange(t, ledger.Range{Lo: lo, Hi: lo + 5})
			a, err := l.Allocate(context.Background(), ledger.AllocateRequest{ServiceName: "dns", Proto: c.proto})
			is.NoErr(err)               // allocate
			is.Equal(a.Port, lo+c.want) // the first port free for the protocol
			// A preferred port is refused for the protocol it is busy in.
			_, err = l.Allocate(context.Background(), ledger.AllocateRequest{ServiceName: "pref", Port: lo, Proto: ledger.ProtoUDP})
			is.Equal(ledger.ErrorCode(err), ledger.ECONFLICT) // lo is bound on UDP
		})
	}
}

func TestAllocateRefusesUnknownProtocol(t *testing.T) {
	is := is.New(t)
	l := openRange(t, ledger.Range{Lo: 24590, Hi: 24599})
	_, err := l.Allocate(context.Background(), ledger.AllocateRequest{ServiceName: "x", Proto: "tcp6x"})
	is.Equal(ledger.ErrorCode(err), ledger.EINVALID)                           // refused as invalid
	is.Equal(ledger.ErrorMessage(err), `proto "tcp6x": want tcp, udp or both`) // saying what is allowed
	st, err := l.Status(context.Background(), [16]byte{})
	is.NoErr(err)
	is.Equal(st.PortManager.AllocatedPorts, 0) // nothing allocated
}

// openRange opens a ledger on a real log set to r, with the real OS probes.
func openRange(t *testing.T, r ledger.Range) *commands.Ledger {
	t.Helper()
	l := MustOpen(t, commands.Config{})
	if err := l.SetRange(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	return l
}
