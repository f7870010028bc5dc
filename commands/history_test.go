package commands_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/matryer/is"
	"github.com/oklog/ulid/v2"
	"github.com/portledger/portledger/commands"
	"github.com/portledger/portledger/ledger"
)

// Newest first gives the same events as oldest first, reversed, and with a
// limit the newest of them: through the port index (a port alone) and
// through the whole log (a service, or a window without a port).
func TestHistoryNewestFirst(t *testing.T) {
	is := is.New(t)
	ctx := context.Background()
	l := MustOpen(t, commands.Config{})
	var ports []int
	for i := range 12 {
		a, err := l.Allocate(ctx, ledger.AllocateRequest{ServiceName: fmt.Sprintf("svc%d", i%3)})
		is.NoErr(err) // allocate
		ports = append(ports, a.Port)
		if i%2 == 0 {
			_, err = l.Release(ctx, ledger.ReleaseRequest{Port: a.Port, Reason: "done"})
			is.NoErr(err) // release
		}
	}
	all, err := l.History(ctx, ledger.HistoryQuery{})
	is.NoErr(err) // all, oldest first
	mid := all[len(all)/4].ID

	queries := []struct {
		name string
		q    ledger.HistoryQuery
	}{
		{"port", ledger.HistoryQuery{Port: ports[0]}},
		{"port since", ledger.HistoryQuery{Port: ports[len(ports)-1], Since: mid}},
		{"port until", ledger.HistoryQuery{Port: ports[0], Until: mid}},
		{"service", ledger.HistoryQuery{Service: "svc1"}},
		{"service since", ledger.HistoryQuery{Service: "svc2", Since: mid}},
		{"everything", ledger.HistoryQuery{}},
		{"window", ledger.HistoryQuery{Since: mid}},
	}
	for _, tc := range queries {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			oldest, err := l.History(ctx, tc.q)
			is.NoErr(err)             // oldest first
			is.True(len(oldest) >= 1) // the query matches something
			want := slices.Clone(oldest)
			slices.Reverse(want)

			q := tc.q
			q.Newest = true
			newest, err := l.History(ctx, q)
			is.NoErr(err)                                  // newest first
			is.Equal(historyIDs(newest), historyIDs(want)) // the same events, reversed
			for _, n := range []int{1, 2, len(want) - 1, len(want) + 5} {
				q.Limit = n
				page, err := l.History(ctx, q)
				is.NoErr(err)                                                    // newest N
				is.Equal(historyIDs(page), historyIDs(want[:min(n, len(want))])) // the newest of them
			}
		})
	}
}

func historyIDs(evs []ledger.Event) []ulid.ULID {
	out := make([]ulid.ULID, len(evs))
	for i, e := range evs {
		out[i] = e.ID
	}
	return out
}
