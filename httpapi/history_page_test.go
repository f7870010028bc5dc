package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"testing"

	"github.com/matryer/is"
	"github.com/portledger/portledger/ledger"
)

// pageIDs reads one page of GET /api/ports/history and returns its event
// IDs and its next cursor.
func pageIDs(t *testing.T, e *testEnv, query string) ([]string, string) {
	t.Helper()
	is := is.New(t)
	status, m := e.call(t, "GET", "/api/ports/history?"+query, "", "")
	is.Equal(status, http.StatusOK) // a page
	var ids []string
	for _, ev := range m["events"].([]any) {
		ids = append(ids, ev.(map[string]any)["id"].(string))
	}
	next, _ := m["next"].(string)
	return ids, next
}

func TestHistoryPages(t *testing.T) {
	is := is.New(t)
	e := newEnv(t)
	ctx := context.Background()
	port := 0
	for range 6 {
		a := e.allocate(t, "api")
		port = a.Port
		_, err := e.svc.Release(ctx, ledger.ReleaseRequest{Port: a.Port, Reason: "done"})
		is.NoErr(err) // release
	}
	whole, next := pageIDs(t, e, fmt.Sprintf("port=%d", port))
	is.Equal(next, "")        // one page holds them all
	is.True(len(whole) >= 12) // six holds of the sticky port

	// Oldest first, pages of 5, each next passed as since.
	var got []string
	q := fmt.Sprintf("port=%d&limit=5", port)
	for {
		ids, next := pageIDs(t, e, q)
		is.True(len(ids) <= 5) // a page holds at most the limit
		got = append(got, ids...)
		if next == "" {
			break
		}
		q = fmt.Sprintf("port=%d&limit=5&since=%s", port, next)
	}
	is.Equal(got, whole) // the pages add up to the whole, in order

	// Newest first, each next passed as until.
	got = nil
	q = fmt.Sprintf("port=%d&limit=5&order=newest", port)
	for {
		ids, next := pageIDs(t, e, q)
		got = append(got, ids...)
		if next == "" {
			break
		}
		q = fmt.Sprintf("port=%d&limit=5&order=newest&until=%s", port, next)
	}
	want := slices.Clone(whole)
	slices.Reverse(want)
	is.Equal(got, want) // newest first, the same events

	status, m := e.call(t, "GET", "/api/ports/history?order=sideways", "", "")
	checkError(t, status, m, http.StatusBadRequest, "invalid") // a bad order
}

// A query that matches more than MaxHistoryPage events is answered in
// pages; the Client follows them, so its caller sees every event.
func TestHistoryOverOnePage(t *testing.T) {
	is := is.New(t)
	e := newEnv(t)
	const port = 27077
	evs := make([]ledger.Event, MaxHistoryPage+3)
	for i := range evs {
		evs[i] = ledger.Event{Type: ledger.EventStatsReported, Port: port, StatsReported: &ledger.StatsReported{RequestCount: int64(i)}}
	}
	_, err := e.log.Append(evs, nil)
	is.NoErr(err) // many events on one port, in one commit

	ids, next := pageIDs(t, e, fmt.Sprintf("port=%d", port))
	is.Equal(len(ids), MaxHistoryPage) // one answer is bounded
	is.True(next != "")                // and says where to go on

	c := e.client()
	all, err := c.History(context.Background(), ledger.HistoryQuery{Port: port})
	is.NoErr(err)                                                                 // the client follows the pages
	is.Equal(len(all), MaxHistoryPage+3)                                          // to every event
	is.Equal(all[len(all)-1].StatsReported.RequestCount, int64(MaxHistoryPage+2)) // the last one last
	newest, err := c.History(context.Background(), ledger.HistoryQuery{Port: port, Newest: true, Limit: 2})
	is.NoErr(err) // newest two
	is.Equal(len(newest), 2)
	is.Equal(newest[0].StatsReported.RequestCount, int64(MaxHistoryPage+2)) // newest first
}
