package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/oklog/ulid/v2"
	"github.com/portledger/portledger/ledger"
)

// FleetReader answers the /api/fleet routes from the fleet's NATS
// JetStream. fleet.Reader satisfies it; httpapi does not import the fleet
// package.
type FleetReader interface {
	// Status is every host with its allocations, now (zero at) or at a
	// moment.
	Status(ctx context.Context, at ulid.ULID) (ledger.FleetView, error)
	// Hosts lists the hosts on the stream with the span of their events.
	Hosts(ctx context.Context) ([]ledger.FleetHostRange, error)
	// Who says who held a host's port at a moment. EINVALID for a bad
	// host or port, ENOTFOUND for a host the fleet does not know.
	Who(ctx context.Context, host string, port int, at ulid.ULID) (ledger.WhoAnswer, error)
	// Find says where a service runs now. EINVALID for an empty name.
	Find(ctx context.Context, service string) ([]ledger.FleetPlacement, error)
	// History lists the fleet's events that match q. EINVALID for a port
	// without a host or since after until.
	History(ctx context.Context, q ledger.FleetHistoryQuery) ([]ledger.FleetEvent, error)
	// Usage reports per host and service how ports were used over a
	// window. EINVALID when since is after until.
	Usage(ctx context.Context, q ledger.UsageQuery) ([]ledger.FleetUsage, error)
}

// fleetRoutes mounts /api/fleet. Without a FleetReader every route answers
// 404 with what to do.
func fleetRoutes(r chi.Router, fr FleetReader, now func() time.Time, log *slog.Logger) {
	if fr == nil {
		r.HandleFunc("/*", handle(log, func(w http.ResponseWriter, r *http.Request) error {
			return ledger.Errorf(ledger.ENOTFOUND, "this daemon is not in a fleet: start it with --fleet nats://HUB:4222")
		}))
		return
	}
	r.Get("/status", handleFleetStatus(fr, now, log))
	r.Get("/hosts", handleFleetHosts(fr, log))
	r.Get("/who/{host}/{port}", handleFleetWho(fr, now, log))
	r.Get("/find/{service}", handleFleetFind(fr, log))
	r.Get("/history", handleFleetHistory(fr, now, log))
	r.Get("/usage", handleFleetUsage(fr, now, log))
}

func handleFleetStatus(fr FleetReader, now func() time.Time, log *slog.Logger) http.HandlerFunc {
	return handle(log, func(w http.ResponseWriter, r *http.Request) error {
		at, err := queryPoint(r, "at", now)
		if err != nil {
			return err
		}
		st, err := fr.Status(r.Context(), at)
		if err != nil {
			return err
		}
		encode(w, r, log, http.StatusOK, st)
		return nil
	})
}

func handleFleetHosts(fr FleetReader, log *slog.Logger) http.HandlerFunc {
	return handle(log, func(w http.ResponseWriter, r *http.Request) error {
		hs, err := fr.Hosts(r.Context())
		if err != nil {
			return err
		}
		if hs == nil {
			hs = []ledger.FleetHostRange{}
		}
		encode(w, r, log, http.StatusOK, map[string]any{"hosts": hs})
		return nil
	})
}

func handleFleetWho(fr FleetReader, now func() time.Time, log *slog.Logger) http.HandlerFunc {
	return handle(log, func(w http.ResponseWriter, r *http.Request) error {
		port, err := parsePort(chi.URLParam(r, "port"))
		if err != nil {
			return err
		}
		at, err := queryPoint(r, "at", now)
		if err != nil {
			return err
		}
		ans, err := fr.Who(r.Context(), chi.URLParam(r, "host"), port, at)
		if err != nil {
			return err
		}
		encode(w, r, log, http.StatusOK, ans)
		return nil
	})
}

func handleFleetFind(fr FleetReader, log *slog.Logger) http.HandlerFunc {
	return handle(log, func(w http.ResponseWriter, r *http.Request) error {
		ps, err := fr.Find(r.Context(), chi.URLParam(r, "service"))
		if err != nil {
			return err
		}
		encode(w, r, log, http.StatusOK, map[string]any{"placements": ps})
		return nil
	})
}

func handleFleetHistory(fr FleetReader, now func() time.Time, log *slog.Logger) http.HandlerFunc {
	return handle(log, func(w http.ResponseWriter, r *http.Request) error {
		q := r.URL.Query()
		var hq ledger.FleetHistoryQuery
		var err error
		hq.Host, hq.Service = q.Get("host"), q.Get("service")
		if s := q.Get("port"); s != "" {
			if hq.Port, err = parsePort(s); err != nil {
				return err
			}
		}
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
		evs, err := fr.History(r.Context(), hq)
		if err != nil {
			return err
		}
		if evs == nil {
			evs = []ledger.FleetEvent{}
		}
		encode(w, r, log, http.StatusOK, map[string]any{"events": evs})
		return nil
	})
}

func handleFleetUsage(fr FleetReader, now func() time.Time, log *slog.Logger) http.HandlerFunc {
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
		us, err := fr.Usage(r.Context(), q)
		if err != nil {
			return err
		}
		if us == nil {
			us = []ledger.FleetUsage{}
		}
		encode(w, r, log, http.StatusOK, map[string]any{"usage": us})
		return nil
	})
}
