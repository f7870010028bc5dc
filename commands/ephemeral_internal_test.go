package commands

import (
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
