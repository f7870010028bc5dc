package httpapi

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/oklog/ulid/v2"
	"github.com/portledger/portledger/ledger"
)

// maxEventLine bounds one line of the event stream; an event is far smaller.
const maxEventLine = 1 << 20

// Subscribe follows the daemon's event stream (GET /api/ports/events); see
// ledger.EventService. It returns the daemon's error when the stream cannot
// start (unauthorized, unavailable, a bad After), and otherwise a
// subscription whose Err, once it ends other than by Close or ctx, is the
// daemon's closing error or EUNAVAILABLE when the stream broke off. A caller
// that wants to go on subscribes again after the last event it saw.
func (c *Client) Subscribe(ctx context.Context, req ledger.SubscribeRequest) (ledger.Subscription, error) {
	if req.Buffer < 0 {
		return nil, ledger.Errorf(ledger.EINVALID, "buffer %d: must not be negative", req.Buffer)
	}
	buffer := req.Buffer
	if buffer == 0 {
		buffer = ledger.DefaultSubscribeBuffer
	}
	var q url.Values
	if !req.After.IsZero() {
		q = url.Values{"after": {req.After.String()}}
	}
	ctx, cancel := context.WithCancel(ctx)
	resp, err := c.send(ctx, http.MethodGet, "/api/ports/events", q, nil, "text/event-stream")
	if err != nil {
		cancel()
		return nil, err
	}
	s := &clientSubscription{c: make(chan ledger.Event, buffer), cancel: cancel}
	go s.read(ctx, resp.Body)
	return s, nil
}

// Events follows the daemon's event stream and calls fn with each event, in
// log order, from a subscription (see Subscribe). It returns when ctx ends
// (ctx.Err()), when fn returns an error (that error), or when the stream
// ends (the subscription's Err).
func (c *Client) Events(ctx context.Context, after ulid.ULID, fn func(ledger.Event) error) error {
	sub, err := c.Subscribe(ctx, ledger.SubscribeRequest{After: after})
	if err != nil {
		return err
	}
	defer sub.Close()
	for e := range sub.C() {
		if err := fn(e); err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return sub.Err()
}

// clientSubscription is the ledger.Subscription of a Client: a goroutine
// reads the stream into c.
type clientSubscription struct {
	c      chan ledger.Event
	cancel context.CancelFunc
	mu     sync.Mutex
	err    error // guarded by mu
}

// C receives the events; see ledger.Subscription.
func (s *clientSubscription) C() <-chan ledger.Event { return s.c }

// Err says why C was closed; see ledger.Subscription.
func (s *clientSubscription) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Close ends the subscription: the stream's connection is closed, and C
// with it.
func (s *clientSubscription) Close() { s.cancel() }

// read parses the stream into s.c until it ends, then records why and
// closes s.c.
func (s *clientSubscription) read(ctx context.Context, body io.ReadCloser) {
	defer close(s.c)
	defer body.Close()
	defer s.cancel()
	err := readStream(ctx, body, func(e ledger.Event) error {
		select {
		case s.c <- e:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	if ctx.Err() != nil {
		err = nil // ended by Close or the caller's context
	}
	s.mu.Lock()
	s.err = err
	s.mu.Unlock()
}

// readStream parses Server-Sent Events from body and calls fn with each
// event, until body or fn fails. It always returns an error: fn's, the
// daemon's closing "error" message, or EUNAVAILABLE when the stream broke
// off or ended.
func readStream(ctx context.Context, body io.Reader, fn func(ledger.Event) error) error {
	sc := bufio.NewScanner(body)
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
