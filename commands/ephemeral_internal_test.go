package commands

import (
	"strings"
	"testing"

	"github.com/matryer/is"
	"github.com/portledger/portledger/ledger"
)

func TestParsePortList(t *testing.T) {
	cases := []struct {
		name string
		in   string
		want []ledger.Range
		bad  bool
	}{
		{"empty", "\n", nil, false},
		{"one port", "8000\n", []ledger.Range{{Lo: 8000, Hi: 8000}}, false},
		{"ranges and ports", "8000-8100,9000", []ledger.Range{{Lo: 8000, Hi: 8100}, {Lo: 9000, Hi: 9000}}, false},
		{"reversed", "9-1", nil, true},
		{"not numbers", "a-b", nil, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			is := is.New(t)
			got, err := parsePortList(c.in)
			is.Equal(err != nil, c.bad) // error only for a bad list
			is.Equal(got, c.want)
		})
	}
}

// TestReservedPortsAreNotRefused checks the second way out: ports reserved
// from the ephemeral range (net.ipv4.ip_local_reserved_ports) may be
// managed, and only the ports left open are counted against a range.
func TestReservedPortsAreNotRefused(t *testing.T) {
	eph := ledger.Range{Lo: 32768, Hi: 60999}
	r := ledger.Range{Lo: 40000, Hi: 40100}
	for _, c := range []struct {
		name     string
		reserved []ledger.Range
		open     string // the ports the refusal names; "" for no refusal
	}{
		{"none reserved", nil, "101 of its ports (40000-40100)"},
		{"all reserved", []ledger.Range{{Lo: 40000, Hi: 40100}}, ""},
		{"reserved within a wider list", []ledger.Range{{Lo: 8000, Hi: 8000}, {Lo: 39000, Hi: 41000}}, ""},
		{"half reserved", []ledger.Range{{Lo: 40000, Hi: 40049}}, "51 of its ports (40050-40100)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			is := is.New(t)
			err := checkEphemeral(r, eph, c.reserved)
			if c.open == "" {
				is.NoErr(err) // every overlapping port is reserved
				return
			}
			is.Equal(ledger.ErrorCode(err), ledger.EINVALID) // refused
			msg := ledger.ErrorMessage(err)
			is.True(strings.Contains(msg, c.open))                                // naming the open ports
			is.True(strings.Contains(msg, "e.g. to 32667-32767"))                 // a range of the same size below
			is.True(!strings.Contains(msg, "--range"))                            // no flag: range set and the API get it too
			is.True(strings.Contains(msg, "ip_local_reserved_ports=40000-40100")) // and the reservation to make
		})
	}
}

// TestPortrangeAdvice checks macOS's way out, which runs there only, here.
func TestPortrangeAdvice(t *testing.T) {
	eph := ledger.Range{Lo: 49152, Hi: 65535}
	for _, c := range []struct {
		name string
		r    ledger.Range
		want string
	}{
		{"overlaps the bottom", ledger.Range{Lo: 49000, Hi: 49200}, "net.inet.ip.portrange.first=49201"},
		{"inside", ledger.Range{Lo: 50000, Hi: 50100}, "net.inet.ip.portrange.first=50101"},
		{"overlaps the top", ledger.Range{Lo: 65000, Hi: 65535}, "net.inet.ip.portrange.last=64999"},
		{"covers it all", ledger.Range{Lo: 40000, Hi: 65535}, "covers all of 49152-65535"},
	} {
		t.Run(c.name, func(t *testing.T) {
			is := is.New(t)
			got := portrangeAdvice(c.r, eph)
			is.True(strings.Contains(got, c.want)) // the sysctl that moves the ephemeral ports off r
		})
	}
}
