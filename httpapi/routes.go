package httpapi

import (
	"log/slog"
	"net/http"

	"github.com/go-chi/chi/v5"
	"github.com/portledger/portledger/ledger"
)

// routes lists the whole API surface. The paths and JSON shapes under
// /api/ports are the original port manager's; /api/ports/range and the
// others carry the rest of ledger.Service so that the Client can stand in
// for a local ledger. The watchdog's own commands (health, conflicts) have
// no route: the watchdog runs where the ledger file is open.
func routes(cfg Config) http.Handler {
	svc, log := cfg.Service, cfg.Logger
	r := chi.NewRouter()
	if cfg.Metrics != nil {
		r.Use(cfg.Metrics.instrument)
	}
	r.Use(recoverer(log))
	r.NotFound(handleNotFound(log))
	r.MethodNotAllowed(handleMethodNotAllowed(log))

	r.Get("/healthz", handleHealthz(log))
	r.Get("/login", handleLogin(cfg.Token, log))
	web := handleDashboardFiles()
	r.Get("/", web.ServeHTTP)
	r.Get("/ui/*", web.ServeHTTP)
	if cfg.Metrics != nil {
		// A read like any other: over TCP it takes the token (auth.go).
		r.Get("/metrics", cfg.Metrics.handler().ServeHTTP)
	}

	r.Route("/api", func(r chi.Router) {
		r.Get("/openapi.json", handleOpenAPI())
		r.Get("/backup", handleBackup(cfg.Backup, log)) // a write's rights (auth.go)
		r.Route("/ports", func(r chi.Router) {
			r.Get("/status", handleStatus(svc, cfg.Watchdog, cfg.FleetStatus, cfg.Now, log))
			r.Get("/allocations", handleAllocations(svc, cfg.Now, log))
			r.Post("/allocations", handleAllocate(svc, log))
			r.Get("/allocations/{port}", handleAllocation(svc, cfg.Now, log))
			r.Delete("/allocations/{port}", handleRelease(svc, log))
			r.Post("/allocations/{port}/pid", handleRegisterPID(svc, log))
			r.Post("/allocations/{port}/stats", handleReportStats(svc, log))
			r.Post("/health-check", handleHealthCheck(cfg.Watchdog, log))
			r.Get("/watchdog/status", handleWatchdogStatus(cfg.Watchdog, log))
			r.Get("/history", handleHistory(svc, cfg.Now, log))
			r.Get("/events", handleEvents(cfg.Events, newFrameCache(), cfg.Heartbeat, cfg.Metrics, log))
			r.Get("/who/{port}", handleWho(svc, cfg.Now, log))
			r.Get("/usage", handleUsage(svc, cfg.Now, log))
			r.Post("/import", handleImport(svc, log))
			r.Get("/verify", handleVerify(cfg.Chain, log))

			r.Put("/range", handleSetRange(svc, cfg.CheckRange, log))
		})
		r.Route("/fleet", func(r chi.Router) { fleetRoutes(r, cfg.Fleet, cfg.Now, log) })
	})
	return r
}

// handleNotFound answers unknown paths with the JSON error.
func handleNotFound(log *slog.Logger) http.HandlerFunc {
	return handle(log, func(w http.ResponseWriter, r *http.Request) error {
		return ledger.Errorf(ledger.ENOTFOUND, "no route %s %s", r.Method, r.URL.Path)
	})
}

// handleMethodNotAllowed answers a known path with the wrong method.
func handleMethodNotAllowed(log *slog.Logger) http.HandlerFunc {
	return handle(log, func(w http.ResponseWriter, r *http.Request) error {
		return ledger.Errorf(EMETHOD, "method %s is not allowed on %s", r.Method, r.URL.Path)
	})
}
