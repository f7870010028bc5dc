package httpapi

import (
	"testing"

	"github.com/matryer/is"
	"github.com/portledger/portledger/ledger"
)

func TestImportChunksKeepPortsWhole(t *testing.T) {
	is := is.New(t)
	var evs []ledger.Event
	for i := range 50 {
		evs = append(evs, ledger.Event{Port: 8000 + i%7})
	}
	chunks := importChunks(evs, 10)
	seen := map[int]int{}
	n := 0
	for ci, c := range chunks {
		n += len(c)
		for _, e := range c {
			if prev, ok := seen[e.Port]; ok {
				is.Equal(prev, ci) // a port's events are in one request
			}
			seen[e.Port] = ci
		}
	}
	is.Equal(n, len(evs))                       // every event once
	is.True(len(chunks) > 1)                    // split
	is.Equal(len(importChunks(evs[:5], 10)), 1) // a small import is one request
}
