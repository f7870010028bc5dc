// Package httpapi is the REST face of the ledger: a chi server that exposes a
// ledger.Service over HTTP (TCP or the daemon's unix socket), and a Client
// that implements ledger.Service by calling that server, so the CLI works the
// same with or without a daemon.
package httpapi

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/portledger/portledger/ledger"
)

// DefaultTokenName is the name under which the daemon's token is recorded
// as the actor of the writes it carries.
const DefaultTokenName = "default"

// DefaultHeartbeat is how often the event stream sends a comment line when
// no event arrives, so that proxies and clients see a live connection.
const DefaultHeartbeat = 15 * time.Second

// Watchdog is the read-only view of the watchdog that the server needs.
type Watchdog interface {
	// Status reports the watchdog's counters.
	Status() ledger.WatchdogStatus
	// Sweep probes every allocation once, now.
	Sweep(ctx context.Context) (ledger.SweepResult, error)
}

// ChainVerifier walks the log's hash chain. *ledger.Log satisfies it.
type ChainVerifier interface {
	// VerifyChain reports the first link of the chain that does not hold.
	VerifyChain() (ledger.ChainReport, error)
}

// Config holds what the server serves.
type Config struct {
	// Service answers every read and write. Required.
	Service ledger.Service
	// Events feeds GET /api/ports/events. Nil: the stream answers 503.
	Events ledger.EventService
	// Watchdog feeds the watchdog part of the status and the health-check.
	// Nil: status reports running:false, and the health-check answers 503.
	Watchdog Watchdog
	// Token is the bearer token that opens every route over TCP
	// ("Authorization: Bearer <token>"); see auth.go for who may do what.
	// Empty: no token matches, so over TCP only the open routes answer.
	Token string
	// TokenName names the token in the actor of the events it writes
	// (default DefaultTokenName).
	TokenName string
	// AllowedHosts are host names, besides loopback ones, that a request
	// over TCP may carry in its Host header (--allowed-host).
	AllowedHosts []string
	// WriteGroups are the gids whose members may write over the unix
	// socket besides the daemon's owner (--allow-group).
	WriteGroups []int
	// Logger receives internal errors (default slog.Default()).
	Logger *slog.Logger
	// Now is the clock used to read relative times such as "2h" (default
	// time.Now).
	Now func() time.Time
	// Chain answers GET /api/ports/verify. Nil: it answers 503.
	Chain ChainVerifier
	// Heartbeat is the event stream's keep-alive interval (default
	// DefaultHeartbeat).
	Heartbeat time.Duration
	// Metrics, when set, instruments every request and is served at
	// GET /metrics under the same access rule as /api. Its registry and
	// watchdog gauges read this Config's Service and Watchdog.
	Metrics *Metrics
	// Backup answers GET /api/backup with a copy of the ledger file. Nil:
	// it answers 503.
	Backup Backuper
	// CheckRange, when set, vets a new range of PUT /api/ports/range unless
	// the request says allow_ephemeral: the daemon refuses there, as the CLI
	// does, a range that overlaps the kernel's ephemeral ports
	// (commands.CheckEphemeral). Nil: no check (serve --allow-ephemeral).
	CheckRange func(ledger.Range) error
	// Fleet answers /api/fleet when the daemon is in a fleet; nil: those
	// routes answer 404.
	Fleet FleetReader
	// FleetStatus, when set, adds this host's publishing lag to the status
	// of now; it returns nil when the daemon is not in a fleet.
	FleetStatus func() *ledger.FleetStatus
}

// NewServer returns the handler of the whole API; routes.go lists it.
func NewServer(cfg Config) http.Handler {
	if cfg.Service == nil {
		panic("httpapi: NewServer needs a Service")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = DefaultHeartbeat
	}
	if cfg.Metrics != nil {
		cfg.Metrics.state.Store(&stateSource{svc: cfg.Service, wd: cfg.Watchdog})
	}
	return guard(cfg, newAuthorizer(cfg), routes(cfg))
}

// Timeouts of the http.Server made by NewHTTPServer.
const (
	ReadHeaderTimeout = 5 * time.Second
	ReadTimeout       = 30 * time.Second
	WriteTimeout      = 60 * time.Second // a health-check sweep probes HTTP endpoints
	IdleTimeout       = 2 * time.Minute
)

// NewHTTPServer wraps h in an http.Server with every timeout set, so a slow or
// silent client cannot hold a connection forever. The event stream lifts its
// own deadlines. Shutdown ends open event streams instead of letting them
// hold it until its deadline, but lets every other request in flight finish
// with its real answer: a command the writer has taken may commit, and its
// caller must hear so.
func NewHTTPServer(h http.Handler) *http.Server {
	stopping, cancel := context.WithCancel(context.Background())
	base := context.WithValue(context.Background(), shutdownKey{}, stopping)
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: ReadHeaderTimeout,
		ReadTimeout:       ReadTimeout,
		WriteTimeout:      WriteTimeout,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    MaxBodyBytes,
		BaseContext:       func(net.Listener) context.Context { return base },
		ConnContext:       ConnContext,
	}
	srv.RegisterOnShutdown(cancel)
	return srv
}

// shutdownKey holds, in the context of a request served by NewHTTPServer's
// server, a context that ends when the server begins to shut down.
type shutdownKey struct{}

// untilShutdown returns the request's context, ended also when the server
// begins to shut down: for streams, which would otherwise never end.
func untilShutdown(r *http.Request) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(r.Context())
	stopping, ok := r.Context().Value(shutdownKey{}).(context.Context)
	if !ok {
		return ctx, cancel
	}
	stop := context.AfterFunc(stopping, cancel)
	return ctx, func() { stop(); cancel() }
}

// CheckListenAddr refuses to serve the API on a TCP address that other
// machines can reach unless a token guards it. addr is host:port; a host that
// is empty, a wildcard or a name other than localhost counts as reachable.
func CheckListenAddr(addr, token string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return ledger.Errorf(ledger.EINVALID, "listen address %q: want host:port, e.g. 127.0.0.1:7999", addr)
	}
	if token != "" || ledger.IsLoopbackHost(host) {
		return nil
	}
	if host == "" {
		host = "every interface"
	}
	return ledger.Errorf(ledger.EINVALID,
		"listen address %q is not loopback (%s): set a token (--token or LEDGER_TOKEN) to serve beyond this machine", addr, host)
}
