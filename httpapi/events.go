package httpapi

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/portledger/portledger/ledger"
)

// Event stream tuning.
const (
	// streamBuffer is how many committed events a stream may lag behind
	// before the writer drops its subscription and the stream ends.
	streamBuffer = 1024
	// replayPage is how many past events one History call reads while a
	// stream catches up.
	replayPage = 1000
)

// handleEvents streams events as Server-Sent Events. With ?after=ULID (or a
// Last-Event-ID header, as browsers send on reconnect) it first replays every
// event after that one, then follows new commits; without it, the stream is
// live only. It subscribes before reading history and skips live events it
// already sent, so an event committed during the replay is neither lost nor
// sent twice.
//
// Each message is "id: <ULID>\nevent: <type>\ndata: <flat event JSON>\n\n".
// A comment line goes out every heartbeat interval. When the client reads so
// slowly that its subscription is dropped, or history cannot be read, an
// "error" message with the JSON error body ends the stream; the client can
// reconnect with the last ID it saw.
func handleEvents(svc ledger.Service, src EventSource, heartbeat time.Duration, log *slog.Logger) http.HandlerFunc {
	return handle(log, func(w http.ResponseWriter, r *http.Request) error {
		if src == nil {
			return ledger.Errorf(EUNAVAILABLE, "no event stream in this daemon")
		}
		var after ulid.ULID
		replay := false
		s := r.URL.Query().Get("after")
		if s == "" {
			s = r.Header.Get("Last-Event-ID")
		}
		if s != "" {
			var err error
			if after, err = ulid.ParseStrict(s); err != nil {
				return ledger.Errorf(ledger.EINVALID, "after %q: want an event ULID", s)
			}
			replay = true
		}

		sub := src.Subscribe(streamBuffer)
		defer sub.Close()

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

		ctx, cancel := untilShutdown(r)
		defer cancel()
		last := after
		if replay {
			for {
				evs, err := svc.History(ctx, ledger.HistoryQuery{Since: last, Limit: replayPage})
				if err != nil {
					endStream(w, rc, r, log, err)
					return nil
				}
				sent := 0
				for _, e := range evs {
					if e.ID.Compare(last) <= 0 {
						continue
					}
					if err := writeEvent(w, e); err != nil {
						return nil
					}
					last = e.ID
					sent++
				}
				if len(evs) < replayPage || sent == 0 {
					break
				}
			}
			if err := rc.Flush(); err != nil {
				return nil
			}
		}

		tick := time.NewTicker(heartbeat)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-tick.C:
				if _, err := io.WriteString(w, ": heartbeat\n\n"); err != nil {
					return nil
				}
			case e, ok := <-sub.C:
				if !ok {
					if sub.Dropped() {
						endStream(w, rc, r, log, ledger.Errorf(EUNAVAILABLE,
							"the event stream fell behind and was dropped; reconnect with after=%s", last))
					}
					return nil
				}
				if e.ID.Compare(last) <= 0 {
					continue
				}
				if err := writeEvent(w, e); err != nil {
					return nil
				}
				last = e.ID
			}
			if err := rc.Flush(); err != nil {
				return nil
			}
		}
	})
}

// writeEvent writes one SSE message for e.
func writeEvent(w io.Writer, e ledger.Event) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "id: %s\nevent: %s\ndata: %s\n\n", e.ID, e.Type, b)
	return err
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
