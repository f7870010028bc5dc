package httpapi

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"

	"github.com/oklog/ulid/v2"
	"github.com/portledger/portledger/ledger"
)

// maxEventLine bounds one line of the event stream; an event is far smaller.
const maxEventLine = 1 << 20

// Events follows the daemon's event stream and calls fn with each event, in
// log order. With a non-zero after it first receives every event after that
// one; with a zero after, only events committed from now on. It returns when
// ctx ends (ctx.Err()), when fn returns an error (that error), or when the
// stream ends: EUNAVAILABLE when the daemon dropped a reader that fell
// behind or went away. A caller that wants to go on reconnects with the ID
// of the last event it saw.
func (c *Client) Events(ctx context.Context, after ulid.ULID, fn func(ledger.Event) error) error {
	var q url.Values
	if !after.IsZero() {
		q = url.Values{"after": {after.String()}}
	}
	resp, err := c.send(ctx, http.MethodGet, "/api/ports/events", q, nil, "text/event-stream")
	if err != nil {
		return err
	}
	defer resp.Body.Close()

	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), maxEventLine)
	var typ string
	var data strings.Builder
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			if data.Len() > 0 {
				if err := dispatch(typ, data.String(), fn); err != nil {
					return err
				}
			}
			typ = ""
			data.Reset()
			continue
		}
		if strings.HasPrefix(line, ":") {
			continue // heartbeat
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "event":
			typ = value
		case "data":
			if data.Len() > 0 {
				data.WriteByte('\n')
			}
			data.WriteString(value)
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err := sc.Err(); err != nil {
		return ledger.Errorf(EUNAVAILABLE, "event stream: %v", err)
	}
	return ledger.Errorf(EUNAVAILABLE, "the daemon ended the event stream")
}

// dispatch hands one complete SSE message to fn, or turns an "error" message
// into the *ledger.Error it carries.
func dispatch(typ, data string, fn func(ledger.Event) error) error {
	if typ == "error" {
		var eb errorBody
		if err := json.Unmarshal([]byte(data), &eb); err != nil || eb.Code == "" {
			return ledger.Errorf(ledger.EINTERNAL, "event stream: unreadable error message")
		}
		return &ledger.Error{Code: eb.Code, Message: eb.Error}
	}
	var e ledger.Event
	if err := json.Unmarshal([]byte(data), &e); err != nil {
		return ledger.Errorf(ledger.EINTERNAL, "event stream: unreadable event: %v", err)
	}
	return fn(e)
}
