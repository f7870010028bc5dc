package httpapi

import (
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/oklog/ulid/v2"
	"github.com/portledger/portledger/ledger"
)

// allocationsBody is the answer of GET /api/ports/allocations.
type allocationsBody struct {
	Allocations []ledger.Allocation `json:"allocations"`
}

// historyBody is the answer of GET /api/ports/history.
type historyBody struct {
	Events []ledger.Event `json:"events"`
	// Next, when more events match than one answer holds, is where the
	// next page starts: pass it as since (oldest first) or as until
	// (order=newest).
	Next string `json:"next,omitempty"`
}

// MaxHistoryPage is the most events one answer of GET /api/ports/history
// holds; a query that matches more gets a next cursor. It bounds the
// daemon's memory and the time of one answer whatever the log's size.
const MaxHistoryPage = 10_000

// pidBody is the request of POST /api/ports/allocations/{port}/pid.
type pidBody struct {
	PID *int `json:"pid"`
}

// statsBody is the request of POST /api/ports/allocations/{port}/stats.
type statsBody struct {
	RequestCount *int64 `json:"request_count"`
	ErrorCount   *int64 `json:"error_count"`
}

// rangeBody is the request of PUT /api/ports/range.
type rangeBody struct {
	PortRange string `json:"port_range"`
	// AllowEphemeral takes a range that overlaps the kernel's ephemeral
	// ports (Config.CheckRange refuses it otherwise), as --allow-ephemeral.
	AllowEphemeral bool `json:"allow_ephemeral,omitempty"`
}

// healthzBody answers GET /healthz. The PID lets a second daemon name the
// running one.
type healthzBody struct {
	Status string `json:"status"`
	PID    int    `json:"pid"`
}

// handleHealthz answers liveness probes; it never needs a token.
func handleHealthz(log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		encode(w, r, log, http.StatusOK, healthzBody{Status: "ok", PID: os.Getpid()})
	}
}

// handleStatus answers the original port manager's status object. The
// watchdog part comes from the running watchdog when the status is of now;
// the past has no watchdog counters.
func handleStatus(svc ledger.Service, wd Watchdog, fleet func() *ledger.FleetStatus, now func() time.Time, log *slog.Logger) http.HandlerFunc {
	return handle(log, func(w http.ResponseWriter, r *http.Request) error {
		at, err := queryPoint(r, "at", now)
		if err != nil {
			return err
		}
		st, err := svc.Status(r.Context(), at)
		if err != nil {
			return err
		}
		switch {
		case !at.IsZero():
			// The past keeps no watchdog counters; report what the
			// service knows.
		case wd != nil:
			st.Watchdog = wd.Status()
		default:
			st.Watchdog.Running = false
		}
		if at.IsZero() && fleet != nil {
			st.Fleet = fleet()
		}
		if st.PortManager.Allocations == nil {
			st.PortManager.Allocations = []ledger.Allocation{}
		}
		encode(w, r, log, http.StatusOK, st)
		return nil
	})
}

// handleAllocations lists the allocations at a point, optionally of one service.
func handleAllocations(svc ledger.Service, now func() time.Time, log *slog.Logger) http.HandlerFunc {
	return handle(log, func(w http.ResponseWriter, r *http.Request) error {
		at, err := queryPoint(r, "at", now)
		if err != nil {
			return err
		}
		allocs, err := svc.Allocations(r.Context(), ledger.AllocationQuery{At: at, Service: r.URL.Query().Get("service")})
		if err != nil {
			return err
		}
		if allocs == nil {
			allocs = []ledger.Allocation{}
		}
		encode(w, r, log, http.StatusOK, allocationsBody{Allocations: allocs})
		return nil
	})
}

// handleAllocation answers the holder of one port, 404 if it is free.
func handleAllocation(svc ledger.Service, now func() time.Time, log *slog.Logger) http.HandlerFunc {
	return handle(log, func(w http.ResponseWriter, r *http.Request) error {
		port, err := pathPort(r)
		if err != nil {
			return err
		}
		at, err := queryPoint(r, "at", now)
		if err != nil {
			return err
		}
		a, err := svc.Allocation(r.Context(), port, at)
		if err != nil {
			return err
		}
		encode(w, r, log, http.StatusOK, a)
		return nil
	})
}

// handleAllocate hands out a port and answers 201 with the allocation.
func handleAllocate(svc ledger.Service, log *slog.Logger) http.HandlerFunc {
	return handle(log, func(w http.ResponseWriter, r *http.Request) error {
		var req ledger.AllocateRequest
		if err := decode(w, r, &req); err != nil {
			return err
		}
		a, err := svc.Allocate(r.Context(), req)
		if err != nil {
			return err
		}
		w.Header().Set("Location", "/api/ports/allocations/"+strconv.Itoa(a.Port))
		if rs, ok := svc.(interface{ Range() ledger.Range }); ok {
			w.Header().Set(RangeHeader, rs.Range().String())
		}
		encode(w, r, log, http.StatusCreated, a)
		return nil
	})
}

// handleRegisterPID records the process that holds a port.
func handleRegisterPID(svc ledger.Service, log *slog.Logger) http.HandlerFunc {
	return handle(log, func(w http.ResponseWriter, r *http.Request) error {
		port, err := pathPort(r)
		if err != nil {
			return err
		}
		var body pidBody
		if err := decode(w, r, &body); err != nil {
			return err
		}
		if body.PID == nil {
			return ledger.Errorf(ledger.EINVALID, `want {"pid": N}`)
		}
		a, err := svc.RegisterPID(r.Context(), port, *body.PID)
		if err != nil {
			return err
		}
		encode(w, r, log, http.StatusOK, a)
		return nil
	})
}

// handleReportStats records a service's request and error totals.
func handleReportStats(svc ledger.Service, log *slog.Logger) http.HandlerFunc {
	return handle(log, func(w http.ResponseWriter, r *http.Request) error {
		port, err := pathPort(r)
		if err != nil {
			return err
		}
		var body statsBody
		if err := decode(w, r, &body); err != nil {
			return err
		}
		if body.RequestCount == nil || body.ErrorCount == nil {
			return ledger.Errorf(ledger.EINVALID, `want {"request_count": N, "error_count": M}`)
		}
		if err := svc.ReportStats(r.Context(), port, *body.RequestCount, *body.ErrorCount); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	})
}

// handleRelease frees a port and answers the released event. ?event_id=
// releases only that allocation, so a late release cannot free the port of
// the next holder.
func handleRelease(svc ledger.Service, log *slog.Logger) http.HandlerFunc {
	return handle(log, func(w http.ResponseWriter, r *http.Request) error {
		port, err := pathPort(r)
		if err != nil {
			return err
		}
		q := r.URL.Query()
		req := ledger.ReleaseRequest{Port: port, Reason: q.Get("reason"), ReleasedBy: q.Get("released_by")}
		if s := q.Get("event_id"); s != "" {
			if req.EventID, err = ulid.ParseStrict(s); err != nil {
				return ledger.Errorf(ledger.EINVALID, "event_id %q: want an event ULID", s)
			}
		}
		ev, err := svc.Release(r.Context(), req)
		if err != nil {
			return err
		}
		encode(w, r, log, http.StatusOK, ev)
		return nil
	})
}

// handleHealthCheck runs one watchdog sweep now and answers its results.
func handleHealthCheck(wd Watchdog, log *slog.Logger) http.HandlerFunc {
	return handle(log, func(w http.ResponseWriter, r *http.Request) error {
		if wd == nil {
			return ledger.Errorf(EUNAVAILABLE, "no watchdog runs in this daemon")
		}
		res, err := wd.Sweep(r.Context())
		if err != nil {
			return err
		}
		if res.Ports == nil {
			res.Ports = []ledger.PortCheck{}
		}
		if res.Conflicts == nil {
			res.Conflicts = []ledger.Conflict{}
		}
		encode(w, r, log, http.StatusOK, res)
		return nil
	})
}

// handleWatchdogStatus answers the watchdog's counters; without a watchdog it
// says running:false.
func handleWatchdogStatus(wd Watchdog, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var st ledger.WatchdogStatus
		if wd != nil {
			st = wd.Status()
		}
		encode(w, r, log, http.StatusOK, st)
	}
}

// handleHistory answers the events that match ?port= &service= &since=
// &until= &limit=, oldest first.
func handleHistory(svc ledger.Service, now func() time.Time, log *slog.Logger) http.HandlerFunc {
	return handle(log, func(w http.ResponseWriter, r *http.Request) error {
		q := r.URL.Query()
		var hq ledger.HistoryQuery
		var err error
		if s := q.Get("port"); s != "" {
			if hq.Port, err = parsePort(s); err != nil {
				return err
			}
		}
		hq.Service = q.Get("service")
		hq.Type = ledger.EventType(q.Get("type"))
		if hq.Since, err = querySince(r, "since", now); err != nil {
			return err
		}
		if hq.Until, err = queryPoint(r, "until", now); err != nil {
			return err
		}
		if s := q.Get("limit"); s != "" {
			if hq.Limit, err = strconv.Atoi(s); err != nil || hq.Limit < 0 {
				return ledger.Errorf(ledger.EINVALID, "limit %q: want a number >= 0", s)
			}
		}
		switch o := q.Get("order"); o {
		case "", "oldest":
		case "newest":
			hq.Newest = true
		default:
			return ledger.Errorf(ledger.EINVALID, "order %q: want oldest or newest", o)
		}
		page := hq.Limit
		if page == 0 || page > MaxHistoryPage {
			page = MaxHistoryPage
		}
		hq.Limit = page + 1 // one more says whether there is a next page
		evs, err := svc.History(r.Context(), hq)
		if err != nil {
			return err
		}
		body := historyBody{Events: evs}
		if len(evs) > page {
			body.Events = evs[:page]
			last := evs[page-1].ID
			if hq.Newest {
				body.Next = ledger.PrevID(last).String()
			} else {
				body.Next = ledger.NextID(last).String()
			}
		}
		if body.Events == nil {
			body.Events = []ledger.Event{}
		}
		encode(w, r, log, http.StatusOK, body)
		return nil
	})
}

// handleSetRange changes the managed range: {"port_range": "LO-HI"}.
func handleSetRange(svc ledger.Service, checkRange func(ledger.Range) error, log *slog.Logger) http.HandlerFunc {
	return handle(log, func(w http.ResponseWriter, r *http.Request) error {
		var body rangeBody
		if err := decode(w, r, &body); err != nil {
			return err
		}
		rg, err := ledger.ParseRange(body.PortRange)
		if err != nil {
			return err
		}
		if checkRange != nil && !body.AllowEphemeral {
			if err := checkRange(rg); err != nil {
				return err
			}
		}
		if err := svc.SetRange(r.Context(), rg); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	})
}

// pathPort reads the {port} of the path.
func pathPort(r *http.Request) (int, error) {
	return parsePort(chi.URLParam(r, "port"))
}

// parsePort reads a TCP port, 1-65535.
func parsePort(s string) (int, error) {
	return ledger.ParsePort(s)
}

// queryPoint reads a point in history from the query (RFC 3339, an event
// ULID or a duration ago such as "2h"); absent means now, the zero ULID.
func queryPoint(r *http.Request, name string, now func() time.Time) (ulid.ULID, error) {
	s := r.URL.Query().Get(name)
	id, err := ledger.ParsePoint(s, now())
	if err != nil {
		return ulid.Zero, ledger.Errorf(ledger.EINVALID, "%s: %s", name, ledger.ErrorMessage(err))
	}
	return id, nil
}

// querySince reads a lower bound in history from the query: an event ULID
// bounds at that event, a time at the first ID of its millisecond.
func querySince(r *http.Request, name string, now func() time.Time) (ulid.ULID, error) {
	id, err := ledger.ParseSince(r.URL.Query().Get(name), now())
	if err != nil {
		return ulid.Zero, ledger.Errorf(ledger.EINVALID, "%s: %s", name, ledger.ErrorMessage(err))
	}
	return id, nil
}

// handleVerify walks the hash chain and reports the first broken link
// (200 either way: the report says whether the chain holds).
func handleVerify(chain ChainVerifier, log *slog.Logger) http.HandlerFunc {
	return handle(log, func(w http.ResponseWriter, r *http.Request) error {
		if chain == nil {
			return ledger.Errorf(EUNAVAILABLE, "this server does not verify the chain")
		}
		rep, err := chain.VerifyChain()
		if err != nil {
			return err
		}
		encode(w, r, log, http.StatusOK, rep)
		return nil
	})
}
