package httpapi

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/matryer/is"
	"github.com/oklog/ulid/v2"
	"github.com/portledger/portledger/ledger"
)

// sseMessage is one parsed Server-Sent Events message.
type sseMessage struct {
	id, event, data string
	comment         bool
}

// openStream starts GET /api/ports/events. When it returns, the server has
// subscribed, because it sends the headers only after subscribing.
func openStream(t *testing.T, e *testEnv, query string) (*bufio.Reader, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, "GET", e.srv.URL+"/api/ports/events"+query, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := e.srv.Client().Do(e.authorize(req))
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("events: status %d", resp.StatusCode)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("events: content type %q", ct)
	}
	stop := func() { cancel(); resp.Body.Close() }
	t.Cleanup(stop)
	return bufio.NewReader(resp.Body), stop
}

// next reads one SSE message (or comment).
func next(t *testing.T, r *bufio.Reader) sseMessage {
	t.Helper()
	var m sseMessage
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("read stream: %v", err)
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "":
			return m
		case strings.HasPrefix(line, ":"):
			m.comment = true
		case strings.HasPrefix(line, "id: "):
			m.id = strings.TrimPrefix(line, "id: ")
		case strings.HasPrefix(line, "event: "):
			m.event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			m.data = strings.TrimPrefix(line, "data: ")
		default:
			t.Fatalf("unexpected stream line %q", line)
		}
	}
}

// nextEvent reads messages, skipping heartbeats, until an event.
func nextEvent(t *testing.T, r *bufio.Reader) (sseMessage, map[string]any) {
	t.Helper()
	for {
		m := next(t, r)
		if m.comment {
			continue
		}
		var data map[string]any
		if err := json.Unmarshal([]byte(m.data), &data); err != nil {
			t.Fatalf("event data %q: %v", m.data, err)
		}
		return m, data
	}
}

func TestEventsLive(t *testing.T) {
	is := is.New(t)
	e := newEnv(t)
	r, _ := openStream(t, e, "")

	a := e.allocate(t, "api")
	m, data := nextEvent(t, r)
	is.Equal(m.id, a.EventID.String())       // id line is the event ULID
	is.Equal(m.event, "allocated")           // event line is the type
	is.Equal(data["id"], a.EventID.String()) // data is the flat event
	is.Equal(data["type"], "allocated")      // with its type
	is.Equal(data["port"], float64(a.Port))  // port
	is.Equal(data["service_name"], "api")    // and payload

	_, err := e.svc.Release(context.Background(), ledger.ReleaseRequest{Port: a.Port, Reason: "done"})
	is.NoErr(err)
	m, data = nextEvent(t, r)
	is.Equal(m.event, "released")    // the release follows
	is.Equal(data["reason"], "done") // with its payload
}

func TestEventsReplayThenLive(t *testing.T) {
	is := is.New(t)
	e := newEnv(t)
	a := e.allocate(t, "api")
	b := e.allocate(t, "worker")
	c := e.allocate(t, "cron")

	r, _ := openStream(t, e, "?after="+a.EventID.String())
	d := e.allocate(t, "late")

	var got []string
	for range 3 {
		m, _ := nextEvent(t, r)
		got = append(got, m.id)
	}
	want := []string{b.EventID.String(), c.EventID.String(), d.EventID.String()}
	is.Equal(got, want) // after a: b and c replayed, then d live, once each

	e2 := e.allocate(t, "later")
	m, _ := nextEvent(t, r)
	is.Equal(m.id, e2.EventID.String()) // nothing doubled before the next live event
}

func TestEventsLastEventIDHeader(t *testing.T) {
	is := is.New(t)
	e := newEnv(t)
	a := e.allocate(t, "api")
	b := e.allocate(t, "worker")

	req, err := http.NewRequest("GET", e.srv.URL+"/api/ports/events", nil)
	is.NoErr(err)
	req.Header.Set("Last-Event-ID", a.EventID.String())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	resp, err := e.srv.Client().Do(e.authorize(req).WithContext(ctx))
	is.NoErr(err)
	defer resp.Body.Close()
	m, _ := nextEvent(t, bufio.NewReader(resp.Body))
	is.Equal(m.id, b.EventID.String()) // a reconnect resumes after the last seen event
}

func TestEventsHeartbeat(t *testing.T) {
	is := is.New(t)
	e := newEnv(t, func(c *Config) { c.Heartbeat = time.Millisecond })
	r, _ := openStream(t, e, "")
	m := next(t, r)
	is.True(m.comment) // a heartbeat comment arrives while nothing happens
}

func TestEventsBadAfter(t *testing.T) {
	e := newEnv(t)
	status, m := e.call(t, "GET", "/api/ports/events?after=yesterday", "", "")
	checkError(t, status, m, http.StatusBadRequest, ledger.EINVALID)
}

func TestEventsWithoutSource(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Events = nil })
	status, m := e.call(t, "GET", "/api/ports/events", "", "")
	checkError(t, status, m, http.StatusServiceUnavailable, EUNAVAILABLE)
}

func TestEventsEndWhenLedgerCloses(t *testing.T) {
	is := is.New(t)
	e := newEnv(t)
	client := e.client()
	a := e.allocate(t, "api")
	b := e.allocate(t, "worker")

	var seen []ulid.ULID
	err := client.Events(context.Background(), a.EventID, func(ev ledger.Event) error {
		seen = append(seen, ev.ID)
		// The stream is up: closing the ledger ends every subscription.
		return e.svc.Close()
	})
	is.Equal(ledger.ErrorCode(err), EUNAVAILABLE) // the stream ended
	is.Equal(seen, []ulid.ULID{b.EventID})        // after the replayed event
}

func TestClientEvents(t *testing.T) {
	is := is.New(t)
	e := newEnv(t)
	client := e.client()
	a := e.allocate(t, "api")
	b := e.allocate(t, "worker")

	var live ledger.Allocation
	var seen []ledger.Event
	errDone := errors.New("done")
	err := client.Events(context.Background(), a.EventID, func(ev ledger.Event) error {
		seen = append(seen, ev)
		if len(seen) == 1 {
			// The replay has begun, so the stream is subscribed.
			live = e.allocate(t, "live")
			return nil
		}
		return errDone
	})
	is.True(errors.Is(err, errDone)) // fn's error ends Events
	is.Equal(len(seen), 2)           // the replayed event and the live one
	is.Equal(seen[0].ID, b.EventID)  // replayed first
	is.Equal(seen[0].Type, ledger.EventAllocated)
	is.Equal(seen[0].Allocated.ServiceName, "worker") // payload decoded
	is.Equal(seen[1].ID, live.EventID)                // then live
	is.Equal(seen[1].Allocated.ServiceName, "live")

	ctx, cancel := context.WithCancel(context.Background())
	err = client.Events(ctx, a.EventID, func(ledger.Event) error { cancel(); return nil })
	is.True(errors.Is(err, context.Canceled)) // cancelling ctx ends Events
}

// historyHook runs before once, inside the first History call: the moment
// between the stream's subscribing and its reading of the past.
// TestEventsCommitsDuringReplayAreSentOnce streams from a point of the past
// while commits flow: the stream must carry exactly the log's events after
// that point, in order, none twice and none lost between the catch-up and
// the live part.
func TestEventsCommitsDuringReplayAreSentOnce(t *testing.T) {
	is := is.New(t)
	e := newEnv(t)
	ctx := context.Background()
	cycle := func() {
		a, err := e.svc.Allocate(ctx, ledger.AllocateRequest{ServiceName: "churn"})
		is.NoErr(err) // allocate
		_, err = e.svc.Release(ctx, ledger.ReleaseRequest{Port: a.Port})
		is.NoErr(err) // release
	}
	first := e.allocate(t, "api")
	for range 20 {
		cycle() // the past to catch up on
	}
	flowing := make(chan struct{})
	go func() {
		defer close(flowing)
		for range 20 {
			cycle() // commits during the catch-up
		}
	}()
	r, stop := openStream(t, e, "?after="+first.EventID.String())
	defer time.AfterFunc(30*time.Second, stop).Stop() // a missing event fails the read, never hangs
	<-flowing
	want, err := e.svc.History(ctx, ledger.HistoryQuery{Since: first.EventID})
	is.NoErr(err)
	want = want[1:] // Since is inclusive
	is.Equal(len(want), 80)
	for _, w := range want {
		m, _ := nextEvent(t, r)
		is.Equal(m.id, w.ID.String()) // the log's next event, in order, once
	}
}

// failingEvents is an event source whose subscriptions end at once with a
// storage error: a disk that fails in the middle of a catch-up cannot be
// made on demand here.
type failingEvents struct{}

func (failingEvents) Subscribe(context.Context, ledger.SubscribeRequest) (ledger.Subscription, error) {
	c := make(chan ledger.Event)
	close(c)
	return failedSubscription{c}, nil
}

type failedSubscription struct{ c chan ledger.Event }

func (s failedSubscription) C() <-chan ledger.Event { return s.c }
func (failedSubscription) Err() error {
	return fmt.Errorf("read /var/secret/disk: input/output error")
}
func (failedSubscription) Close() {}

func TestEventsReplayFailureEndsStream(t *testing.T) {
	is := is.New(t)
	e := newEnv(t, func(c *Config) { c.Events = failingEvents{} })
	a := e.allocate(t, "api")
	calls := 0
	err := e.client().Events(context.Background(), a.EventID, func(ledger.Event) error {
		calls++
		return nil
	})
	is.Equal(calls, 0)                                // nothing replayed
	is.Equal(ledger.ErrorCode(err), ledger.EINTERNAL) // the stream's error message ends Events
	is.Equal(ledger.ErrorMessage(err), "internal error")
	is.True(strings.Contains(e.logs.String(), "/var/secret/disk")) // details stay in the log
}
