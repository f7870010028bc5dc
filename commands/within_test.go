package commands_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/matryer/is"
	"github.com/portledger/portledger/commands"
	"github.com/portledger/portledger/ledger"
)

func TestAllocateWithinPartOfRange(t *testing.T) {
	is := is.New(t)
	ctx := context.Background()
	l := MustOpen(t, commands.Config{})
	part := fmt.Sprintf("%d-%d", testRange.Hi-1, testRange.Hi)

	var got []int
	for i := range 2 {
		a, err := l.Allocate(ctx, ledger.AllocateRequest{ServiceName: "tests", Within: part})
		is.NoErr(err) // allocate within the part
		got = append(got, a.Port)
		is.Equal(a.Port, testRange.Hi-1+i) // the lowest free port of the part, not of the range
	}
	_, err := l.Allocate(ctx, ledger.AllocateRequest{ServiceName: "tests", Within: part})
	is.Equal(ledger.ErrorCode(err), ledger.EEXHAUSTED)              // a full part is exhausted
	is.True(strings.Contains(err.Error(), "no free port in "+part)) // and says which part
	other, err := l.Allocate(ctx, ledger.AllocateRequest{ServiceName: "api"})
	is.NoErr(err)                      // the rest of the range still serves
	is.Equal(other.Port, testRange.Lo) // from its own lowest port

	tests := []struct {
		name string
		req  ledger.AllocateRequest
	}{
		{"not a range", ledger.AllocateRequest{ServiceName: "x", Within: "lots"}},
		{"reversed", ledger.AllocateRequest{ServiceName: "x", Within: fmt.Sprintf("%d-%d", testRange.Hi, testRange.Lo)}},
		{"outside the managed range", ledger.AllocateRequest{ServiceName: "x", Within: "1000-1010"}},
		{"straddles the range's end", ledger.AllocateRequest{ServiceName: "x", Within: fmt.Sprintf("%d-%d", testRange.Hi, testRange.Hi+5)}},
		{"preferred port outside the part", ledger.AllocateRequest{ServiceName: "x", Within: part, Port: testRange.Lo + 5}},
		{"unknown proto", ledger.AllocateRequest{ServiceName: "x", Proto: "sctp"}},
	}
	before, err := l.Log().Count()
	is.NoErr(err)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			_, err := l.Allocate(ctx, tc.req)
			is.Equal(ledger.ErrorCode(err), ledger.EINVALID) // refused as invalid
		})
	}
	after, err := l.Log().Count()
	is.NoErr(err)
	is.Equal(after, before) // nothing written
}

func TestAllocateProtoBothSkipsPortsTakenOnUDP(t *testing.T) {
	is := is.New(t)
	ctx := context.Background()
	l := MustOpen(t, commands.Config{})
	// A real UDP socket on the lowest port: free on TCP, taken on UDP.
	pc, err := net.ListenPacket("udp", fmt.Sprintf(":%d", testRange.Lo))
	is.NoErr(err) // bind UDP on the first port
	defer pc.Close()

	tcp, err := l.Allocate(ctx, ledger.AllocateRequest{ServiceName: "web"})
	is.NoErr(err)
	is.Equal(tcp.Port, testRange.Lo) // TCP alone does not care about UDP
	_, err = l.Release(ctx, ledger.ReleaseRequest{Port: tcp.Port})
	is.NoErr(err)

	both, err := l.Allocate(ctx, ledger.AllocateRequest{ServiceName: "tests", Proto: ledger.ProtoBoth})
	is.NoErr(err)
	is.Equal(both.Port, testRange.Lo+1) // both: the port taken on UDP is skipped
	udp, err := l.Allocate(ctx, ledger.AllocateRequest{ServiceName: "dns", Proto: ledger.ProtoUDP})
	is.NoErr(err)
	is.Equal(udp.Port, testRange.Lo+2) // udp: likewise
}

func TestProbeUDPPort(t *testing.T) {
	is := is.New(t)
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	is.NoErr(err) // bind UDP
	port := pc.LocalAddr().(*net.UDPAddr).Port
	is.True(commands.ProbeUDPPort(port) != nil) // a bound UDP port is not free
	is.NoErr(pc.Close())
	is.NoErr(commands.ProbeUDPPort(port)) // and free once let go
}
