package httpapi

import (
	"log/slog"
	"net/http"
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

// handleUsage answers per-service usage over ?since= &until= &service=.
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
		us, err := svc.Usage(r.Context(), q)
		if err != nil {
			return err
		}
		if us == nil {
			us = []ledger.ServiceUsage{}
		}
		encode(w, r, log, http.StatusOK, usageBody{Usage: us})
		return nil
	})
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
