package httpapi

import (
	"context"
	"net/http"
	"strconv"

	"github.com/oklog/ulid/v2"
	"github.com/portledger/portledger/ledger"
)

// importChunk is how many events one import request carries at most, so
// that a request stays well under MaxImportBytes (an event is a few
// hundred bytes of JSON).
const importChunk = 20_000

// Who says who held a port at a point; see ledger.Service.
func (c *Client) Who(ctx context.Context, port int, at ulid.ULID) (ledger.WhoAnswer, error) {
	var ans ledger.WhoAnswer
	err := c.do(ctx, http.MethodGet, "/api/ports/who/"+strconv.Itoa(port), pointQuery("at", at, nil), nil, &ans)
	return ans, err
}

// Usage reports per-service usage over a window; see ledger.Service.
func (c *Client) Usage(ctx context.Context, q ledger.UsageQuery) ([]ledger.ServiceUsage, error) {
	v := pointQuery("since", q.Since, nil)
	v = pointQuery("until", q.Until, v)
	if q.Service != "" {
		v.Set("service", q.Service)
	}
	var body usageBody
	err := c.do(ctx, http.MethodGet, "/api/ports/usage", v, nil, &body)
	return body.Usage, err
}

// Import writes imported events; see ledger.Service. Large imports go in
// several requests, each holding whole ports' histories (the daemon checks
// that an import writes the past only port by port, so an allocation and
// its release travel together); each request is one import on the daemon,
// and a failed one can be repeated, since events already in the ledger are
// skipped. A refusal names the event by its index in its request and by
// its file:line.
func (c *Client) Import(ctx context.Context, evs []ledger.Event) (ledger.ImportResult, error) {
	var total ledger.ImportResult
	for _, chunk := range importChunks(evs, importChunk) {
		var res ledger.ImportResult
		if err := c.do(ctx, http.MethodPost, "/api/ports/import", nil, importBody{Events: chunk}, &res); err != nil {
			return total, err
		}
		total.Imported += res.Imported
		total.Duplicates += res.Duplicates
		total.Skipped = append(total.Skipped, res.Skipped...)
	}
	return total, nil
}

// importChunks splits evs into requests of about max events that never
// split one port's events, in the order of each port's first event; a
// port with more than max events goes alone.
func importChunks(evs []ledger.Event, max int) [][]ledger.Event {
	if len(evs) <= max {
		return [][]ledger.Event{evs}
	}
	byPort := map[int][]ledger.Event{}
	var order []int
	for _, e := range evs {
		if _, ok := byPort[e.Port]; !ok {
			order = append(order, e.Port)
		}
		byPort[e.Port] = append(byPort[e.Port], e)
	}
	var chunks [][]ledger.Event
	var cur []ledger.Event
	for _, p := range order {
		if len(cur) > 0 && len(cur)+len(byPort[p]) > max {
			chunks = append(chunks, cur)
			cur = nil
		}
		cur = append(cur, byPort[p]...)
	}
	if len(cur) > 0 {
		chunks = append(chunks, cur)
	}
	return chunks
}
