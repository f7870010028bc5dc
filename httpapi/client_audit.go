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
// several requests, oldest events first; each is one import on the daemon,
// and a failed one can be repeated, since events already in the ledger are
// skipped.
func (c *Client) Import(ctx context.Context, evs []ledger.Event) (ledger.ImportResult, error) {
	var total ledger.ImportResult
	for start := 0; start < len(evs); start += importChunk {
		end := min(start+importChunk, len(evs))
		var res ledger.ImportResult
		if err := c.do(ctx, http.MethodPost, "/api/ports/import", nil, importBody{Events: evs[start:end]}, &res); err != nil {
			return total, err
		}
		total.Imported += res.Imported
		total.Duplicates += res.Duplicates
		total.Skipped = append(total.Skipped, res.Skipped...)
	}
	return total, nil
}
