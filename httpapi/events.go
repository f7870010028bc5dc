package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/portledger/portledger/ledger"
)

// streamBuffer is how many committed events a stream may lag behind before
// its subscription is dropped and the stream ends.
const streamBuffer = ledger.DefaultSubscribeBuffer

// handleEvents streams events as Server-Sent Events. With ?after=ULID (or a
// Last-Event-ID header, as browsers send on reconnect) the subscription
// first replays every event after that one, then follows new commits;
// without it, the stream is live only. The subscription (see
// ledger.EventService) sends each event once, in log order.
//
// Each message is "id: <ULID>\nevent: <type>\ndata: <flat event JSON>\n\n".
// A comment line goes out every heartbeat interval. When the client reads so
// slowly that its subscription is dropped, or history cannot be read, an
// "error" message with the JSON error body ends the stream; the client can
// reconnect with the last ID it saw.
func handleEvents(src ledger.EventService, frames *frameCache, heartbeat time.Duration, metrics *Metrics, log *slog.Logger) http.HandlerFunc {
	return handle(log, func(w http.ResponseWriter, r *http.Request) error {
		if src == nil {
			return ledger.Errorf(EUNAVAILABLE, "no event stream in this daemon")
		}
		after, err := streamStart(r)
		if err != nil {
			return err
		}
		ctx, cancel := untilShutdown(r)
		defer cancel()
		sub, err := src.Subscribe(ctx, ledger.SubscribeRequest{After: after, Buffer: streamBuffer})
		if err != nil {
			return err
		}
		defer sub.Close()
		defer metrics.streamOpened()()

		rc := http.NewResponseController(w)
		// The stream outlives the server's read and write timeouts; an
		// expired read deadline would even cancel the request's context.
		_ = rc.SetReadDeadline(time.Time{})
		_ = rc.SetWriteDeadline(time.Time{})
		h := w.Header()
		h.Set("Content-Type", "text/event-stream")
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Accel-Buffering", "no")
		w.WriteHeader(http.StatusOK)
		if err := rc.Flush(); err != nil {
			log.ErrorContext(r.Context(), "event stream: cannot flush", "err", err)
			return nil
		}
		st := &stream{w: w, rc: rc, r: r, log: log, frames: frames, last: after}
		st.run(ctx, sub, heartbeat)
		return nil
	})
}

// streamStart reads where a stream starts: ?after=ULID, else the
// Last-Event-ID header, else the zero ULID (live only).
func streamStart(r *http.Request) (ulid.ULID, error) {
	s := r.URL.Query().Get("after")
	if s == "" {
		s = r.Header.Get("Last-Event-ID")
	}
	if s == "" {
		return ulid.Zero, nil
	}
	after, err := ulid.ParseStrict(s)
	if err != nil {
		return ulid.Zero, ledger.Errorf(ledger.EINVALID, "after %q: want an event ULID", s)
	}
	return after, nil
}

// stream is one open event stream: where it writes, and the last event it
// sent.
type stream struct {
	w      http.ResponseWriter
	rc     *http.ResponseController
	r      *http.Request
	log    *slog.Logger
	frames *frameCache
	last   ulid.ULID
}

// run sends the subscription's events until it, the context or the
// connection ends.
//
// While events flow, the stream wakes every flushEvery and sends what
// arrived since in one write, rather than waking for each event: with a
// thousand streams, an event then costs the publisher a thousand buffered
// channel sends and no goroutine switches. When a wake finds nothing, the
// stream sleeps until the next event.
func (st *stream) run(ctx context.Context, sub ledger.Subscription, heartbeat time.Duration) {
	beat := time.NewTicker(heartbeat)
	defer beat.Stop()
	poll := time.NewTicker(flushEvery)
	defer poll.Stop()
	polling := false
	for {
		var idle <-chan ledger.Event // receives only while not polling
		var tick <-chan time.Time    // fires only while polling
		if polling {
			tick = poll.C
		} else {
			idle = sub.C()
		}
		select {
		case <-ctx.Done():
			return
		case <-beat.C:
			if _, err := io.WriteString(st.w, ": heartbeat\n\n"); err != nil {
				return
			}
			if err := st.rc.Flush(); err != nil {
				return
			}
		case e, ok := <-idle:
			if !ok {
				st.closed(sub)
				return
			}
			if !st.send(e) {
				return
			}
			polling = true
			poll.Reset(flushEvery)
		case <-tick:
			wrote := false
			for drained := false; !drained; {
				select {
				case e, ok := <-sub.C():
					if !ok {
						_ = st.rc.Flush()
						st.closed(sub)
						return
					}
					if !st.send(e) {
						return
					}
					wrote = true
				default:
					drained = true
				}
			}
			if err := st.rc.Flush(); err != nil {
				return
			}
			polling = wrote
		}
	}
}

// send writes e unless it was sent already; it reports false when the
// stream must end.
func (st *stream) send(e ledger.Event) bool {
	if e.ID.Compare(st.last) <= 0 {
		return true
	}
	if _, err := st.w.Write(st.frames.frame(e)); err != nil {
		return false
	}
	st.last = e.ID
	return true
}

// closed ends the stream after its subscription ended: with an "error"
// message when the subscription was dropped or its catch-up failed.
func (st *stream) closed(sub ledger.Subscription) {
	err := sub.Err()
	switch {
	case err == nil:
		return
	case ledger.ErrorCode(err) == EUNAVAILABLE:
		err = ledger.Errorf(EUNAVAILABLE, "the event stream fell behind and was dropped; reconnect with after=%s", st.last)
	}
	endStream(st.w, st.rc, st.r, st.log, err)
}

// flushEvery is how often a live stream sends what arrived, and so how
// long an event may wait before it goes out.
const flushEvery = 50 * time.Millisecond

// appendFrame appends the SSE message of e to b.
func appendFrame(b []byte, e ledger.Event) []byte {
	data, err := json.Marshal(e)
	if err != nil {
		// An Event always marshals; keep the stream valid if it ever does not.
		data = []byte(`{}`)
	}
	b = fmt.Appendf(b, "id: %s\nevent: %s\ndata: ", e.ID, e.Type)
	b = append(b, data...)
	return append(b, "\n\n"...)
}

// frameCache holds the SSE messages of the newest events, so that a live
// event is encoded once however many streams send it.
type frameCache struct {
	mu   sync.RWMutex
	m    map[ulid.ULID][]byte
	ring []ulid.ULID
	next int
}

// frameCacheSize is how many recent events keep their encoded message.
const frameCacheSize = 1024

func newFrameCache() *frameCache {
	return &frameCache{m: make(map[ulid.ULID][]byte, frameCacheSize), ring: make([]ulid.ULID, frameCacheSize)}
}

// frame returns the SSE message of e, encoding it on first use. The bytes
// are shared: callers must not modify them.
func (c *frameCache) frame(e ledger.Event) []byte {
	c.mu.RLock()
	b, ok := c.m[e.ID]
	c.mu.RUnlock()
	if ok {
		return b
	}
	b = appendFrame(nil, e)
	c.mu.Lock()
	if _, ok := c.m[e.ID]; !ok {
		delete(c.m, c.ring[c.next])
		c.ring[c.next] = e.ID
		c.next = (c.next + 1) % len(c.ring)
		c.m[e.ID] = b
	}
	c.mu.Unlock()
	return b
}

// endStream sends err as a final "error" message. Internal details are
// logged, not sent.
func endStream(w http.ResponseWriter, rc *http.ResponseController, r *http.Request, log *slog.Logger, err error) {
	code, msg := ledger.ErrorCode(err), ledger.ErrorMessage(err)
	if code == ledger.EINTERNAL {
		log.ErrorContext(r.Context(), "event stream failed", "err", err)
		msg = "internal error"
	}
	b, _ := json.Marshal(errorBody{Error: msg, Code: code})
	_, _ = fmt.Fprintf(w, "event: error\ndata: %s\n\n", b)
	_ = rc.Flush()
}
