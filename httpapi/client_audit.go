package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
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

// Usage reports per-service usage over a window; see ledger.Service. It
// holds the whole answer: UsageEach reads it a service at a time.
func (c *Client) Usage(ctx context.Context, q ledger.UsageQuery) ([]ledger.ServiceUsage, error) {
	var body usageBody
	err := c.do(ctx, http.MethodGet, "/api/ports/usage", usageValues(q, "", 0), nil, &body)
	return body.Usage, err
}

// UsageEach reads one page of the daemon's usage answer (all of it when
// limit is 0) and calls fn with each service as it is decoded, so that
// neither side holds the answer; see commands.Ledger.UsageEach. It returns
// the next page's after, "" when there is none. An answer that breaks off
// midway is an error: the services given to fn so far are not all.
func (c *Client) UsageEach(ctx context.Context, q ledger.UsageQuery, after string, limit int, fn func(ledger.ServiceUsage) error) (string, error) {
	const path = "/api/ports/usage"
	resp, err := c.send(ctx, http.MethodGet, path, usageValues(q, after, limit), nil, "application/json")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	next, err := decodeUsage(json.NewDecoder(resp.Body), fn)
	var ce callerError
	if errors.As(err, &ce) {
		return "", ce.err
	}
	if err != nil {
		return "", fmt.Errorf("GET %s: decode answer: %w", path, err)
	}
	return next, nil
}

// callerError is an error of the caller's fn, which UsageEach returns as
// it is rather than as an answer it could not decode.
type callerError struct{ err error }

func (e callerError) Error() string { return e.err.Error() }

// decodeUsage reads {"usage": [...], "next": "..."} a service at a time.
func decodeUsage(dec *json.Decoder, fn func(ledger.ServiceUsage) error) (string, error) {
	var next string
	if err := expectDelim(dec, '{'); err != nil {
		return "", err
	}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return "", err
		}
		switch t {
		case "usage":
			if err := expectDelim(dec, '['); err != nil {
				return "", err
			}
			for dec.More() {
				var u ledger.ServiceUsage
				if err := dec.Decode(&u); err != nil {
					return "", err
				}
				if err := fn(u); err != nil {
					return "", callerError{err}
				}
			}
			if err := expectDelim(dec, ']'); err != nil {
				return "", err
			}
		case "next":
			if err := dec.Decode(&next); err != nil {
				return "", err
			}
		default:
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return "", err
			}
		}
	}
	if err := expectDelim(dec, '}'); err != nil {
		return "", err
	}
	return next, nil
}

func expectDelim(dec *json.Decoder, d json.Delim) error {
	t, err := dec.Token()
	if err != nil {
		if err == io.EOF {
			return io.ErrUnexpectedEOF
		}
		return err
	}
	if t != d {
		return fmt.Errorf("want %q, got %v", d, t)
	}
	return nil
}

// usageValues is the query of GET /api/ports/usage.
func usageValues(q ledger.UsageQuery, after string, limit int) url.Values {
	v := pointQuery("since", q.Since, nil)
	v = pointQuery("until", q.Until, v)
	if q.Service != "" {
		v.Set("service", q.Service)
	}
	if after != "" {
		v.Set("after", after)
	}
	if limit > 0 {
		v.Set("limit", strconv.Itoa(limit))
	}
	return v
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
