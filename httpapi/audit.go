package httpapi

import (
	"bufio"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/portledger/portledger/ledger"
)

// MaxImportBytes is the largest body of POST /api/ports/import: an import
// carries a whole old port manager's logs, far past MaxBodyBytes. The Client
// splits bigger imports.
const MaxImportBytes = 32 << 20

// usageBody is the answer of GET /api/ports/usage.
type usageBody struct {
	Usage []ledger.ServiceUsage `json:"usage"`
	Next  string                `json:"next,omitempty"`
}

// importBody is the request of POST /api/ports/import.
type importBody struct {
	Events []ledger.Event `json:"events"`
}

// handleWho answers who held {port} at ?at= (absent: now).
func handleWho(svc ledger.Service, now func() time.Time, log *slog.Logger) http.HandlerFunc {
	return handle(log, func(w http.ResponseWriter, r *http.Request) error {
		port, err := pathPort(r)
		if err != nil {
			return err
		}
		at, err := queryPoint(r, "at", now)
		if err != nil {
			return err
		}
		ans, err := svc.Who(r.Context(), port, at)
		if err != nil {
			return err
		}
		encode(w, r, log, http.StatusOK, ans)
		return nil
	})
}

// UsageStreamer is what the usage route uses, when the Service has it, to
// answer in bounded memory: the services a page at a time, in name order,
// each given to fn as it comes (commands.Ledger.UsageEach). Without it the
// route pages Usage's whole answer.
type UsageStreamer interface {
	UsageEach(ctx context.Context, q ledger.UsageQuery, after string, limit int, fn func(ledger.ServiceUsage) error) (next string, err error)
}

// handleUsage answers per-service usage over ?since= &until= &service=, by
// name, a page at a time with &limit= (0 or absent: every service) and
// &after= (the page's first service sorts after it). {"usage": [...]}, and
// "next" after the list when a page stopped at its limit with services
// left: the next page's after.
//
// The rows are written as they come, so the answer of a million services
// is never held; an error after the first row (a temporary file unreadable
// midway) cuts the connection, leaving the client an answer it cannot
// decode rather than a short one it would take for whole.
func handleUsage(svc ledger.Service, now func() time.Time, log *slog.Logger) http.HandlerFunc {
	return handle(log, func(w http.ResponseWriter, r *http.Request) error {
		var q ledger.UsageQuery
		var err error
		if q.Since, err = querySince(r, "since", now); err != nil {
			return err
		}
		if q.Until, err = queryPoint(r, "until", now); err != nil {
			return err
		}
		q.Service = r.URL.Query().Get("service")
		after := r.URL.Query().Get("after")
		limit := 0
		if s := r.URL.Query().Get("limit"); s != "" {
			if limit, err = strconv.Atoi(s); err != nil || limit < 0 {
				return ledger.Errorf(ledger.EINVALID, "limit %q: want a number >= 0", s)
			}
		}
		// A year of a million services takes longer to count and to send
		// than the server's timeouts allow a request: the read deadline
		// would cancel the count midway, the write deadline cut the answer.
		// So the read deadline is lifted (a client that goes away is still
		// seen) and the write deadline slides with the answer's progress: a
		// client that stops reading is still cut WriteTimeout after its last
		// progress.
		rc := http.NewResponseController(w)
		_ = rc.SetReadDeadline(time.Time{})
		out := &usageWriter{w: w, rc: rc}
		next, err := UsageEach(r.Context(), svc, q, after, limit, out.row)
		if err != nil {
			if out.b == nil {
				return err
			}
			log.WarnContext(r.Context(), "usage answer cut", "err", err)
			panic(http.ErrAbortHandler)
		}
		out.end(next) // a failed write is a client gone: nothing to tell it
		return nil
	})
}

// UsageEach reads usage a page at a time through svc's UsageEach when it
// has one (UsageStreamer), else pages the whole answer of svc.Usage as
// UsageEach would: the route and the CLI read it this way.
func UsageEach(ctx context.Context, svc ledger.Service, q ledger.UsageQuery, after string, limit int, fn func(ledger.ServiceUsage) error) (string, error) {
	if st, ok := svc.(UsageStreamer); ok {
		return st.UsageEach(ctx, q, after, limit, fn)
	}
	return usagePage(ctx, svc, q, after, limit, fn)
}

// usagePage pages the whole answer of svc.Usage as UsageEach would.
func usagePage(ctx context.Context, svc ledger.Service, q ledger.UsageQuery, after string, limit int, fn func(ledger.ServiceUsage) error) (string, error) {
	us, err := svc.Usage(ctx, q)
	if err != nil {
		return "", err
	}
	i, _ := slices.BinarySearchFunc(us, after, func(u ledger.ServiceUsage, name string) int {
		if u.Service <= name {
			return -1
		}
		return 1
	})
	for n, u := range us[i:] {
		if limit > 0 && n == limit {
			return after, nil
		}
		if err := fn(u); err != nil {
			return "", err
		}
		after = u.Service
	}
	return "", nil
}

// usageWriter writes the usage answer a row at a time, as encode would
// write it whole: {"usage":[...]} and a newline.
type usageWriter struct {
	w  http.ResponseWriter
	rc *http.ResponseController
	b  *bufio.Writer // nil until the first row
	n  int
}

// usageProgressRows is how many rows go between two moves of the write
// deadline.
const usageProgressRows = 256

// progress moves the write deadline to WriteTimeout from now.
func (u *usageWriter) progress() {
	_ = u.rc.SetWriteDeadline(time.Now().Add(WriteTimeout))
}

func (u *usageWriter) start() {
	u.progress()
	u.w.Header().Set("Content-Type", "application/json")
	u.w.WriteHeader(http.StatusOK)
	u.b = bufio.NewWriterSize(u.w, 32<<10)
	u.b.WriteString(`{"usage":[`)
}

func (u *usageWriter) row(s ledger.ServiceUsage) error {
	if u.b == nil {
		u.start()
	}
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	if u.n > 0 {
		u.b.WriteByte(',')
	}
	u.n++
	if u.n%usageProgressRows == 0 {
		u.progress()
	}
	_, err = u.b.Write(b)
	return err
}

func (u *usageWriter) end(next string) {
	if u.b == nil {
		u.start()
	}
	u.b.WriteByte(']')
	if next != "" {
		b, _ := json.Marshal(next) // a string always encodes
		u.b.WriteString(`,"next":`)
		u.b.Write(b)
	}
	u.b.WriteString("}\n")
	u.b.Flush()
}

// handleImport writes imported events: {"events": [...]}.
func handleImport(svc ledger.Service, log *slog.Logger) http.HandlerFunc {
	return handle(log, func(w http.ResponseWriter, r *http.Request) error {
		var body importBody
		if err := decodeLimit(w, r, &body, MaxImportBytes); err != nil {
			return err
		}
		res, err := svc.Import(r.Context(), body.Events)
		if err != nil {
			return err
		}
		encode(w, r, log, http.StatusOK, res)
		return nil
	})
}
