package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/portledger/portledger/commands"
	"github.com/portledger/portledger/httpapi"
	"github.com/portledger/portledger/internal/portserver"
	"github.com/portledger/portledger/ledger"
	"github.com/portledger/portledger/projection"
	"github.com/portledger/portledger/watchdog"
)

// DefaultAddr is where the daemon serves the REST API over TCP.
const DefaultAddr = "127.0.0.1:7999"

// maxSocketPath is the longest path a unix socket may have on Linux
// (sun_path holds 108 bytes with the closing NUL).
const maxSocketPath = 107

// shutdownGrace bounds a clean stop: in-flight requests are answered, the
// writer drains, the projections are flushed. It outlasts the server's
// ReadHeaderTimeout: http.Server.Shutdown waits for a connection that has
// not sent a whole first request yet (a browser's preconnect, a spare
// connection an HTTP client dialed for a request it then cancelled) until
// that connection is 5 s old or its header deadline closes it. With a
// shorter grace such a client made a clean stop end in "context deadline
// exceeded" and exit 1.
const shutdownGrace = httpapi.ReadHeaderTimeout + time.Second

// shutdownDrain is how long a stopping daemon keeps answering on the
// connections it has after it stopped accepting new ones. A request that a
// client sent just before the signal may not have been read yet, and
// http.Server.Shutdown closes a connection it has not read from and drops a
// request it reads after it began: the client would see EOF for a request
// it sent while the daemon ran.
const shutdownDrain = 250 * time.Millisecond

// The daemon's garbage collector runs at a fifth of the default pace
// (GOGC=400): its live heap is a few MiB, and at the default pace the
// collector cost about a tenth of its CPU per write under load. A soft
// limit (GOMEMLIMIT) of gcMemoryLimit makes it collect sooner whenever the
// heap would grow past that, so the slower pace never costs memory the
// daemon would otherwise not use. GOGC and GOMEMLIMIT in the environment
// win over both.
const (
	gcPercent     = 400
	gcMemoryLimit = 64 << 20
)

func tuneGC(getenv func(string) string) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	if getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(gcMemoryLimit)
	}
}

func runServe(ctx context.Context, e *env, args []string) error {
	var c common
	var wopts watchdog.Options
	var ps portserverFlags
	fs := newFlags(e, "serve", "serve [--addr 127.0.0.1:7999] [--range 8000-8100] [--interval 30s] [--data DIR]", `
Run the daemon. At start it checks the log's hash chain from the newest
snapshot (see 'ledger verify') and refuses to run on a broken chain unless
--accept-broken-chain is given, which is recorded as an event. It owns the ledger file, serves the REST API on the unix
socket ledger.sock in the data directory (mode 0600) and on --addr, keeps
port_registry.json and the daily JSONL logs up to date, and runs the watchdog,
which checks every allocation every --interval and frees the ports of dead
services. Other ledger commands go through it while it runs.
With --portserver it also answers portpicker's portserver protocol
(PORTSERVER_ADDRESS): each answer is an allocation held by the asking
process, released by the watchdog when that process is gone.
SIGINT or SIGTERM stop it cleanly. --addr '' serves the unix socket only.
A non-loopback --addr needs --token.

On --addr it also serves the dashboard at / (the range, the allocations live,
a time slider over the log's life, each port's timeline, usage per service)
and Prometheus metrics at /metrics. It prints the dashboard's URL; with a
token, that URL hands the token to the browser once, as a session cookie, so
the page's release button works.
With --fleet nats://HUB:4222 (see 'ledger hub') it also publishes every event
to the fleet's NATS JetStream as --host, in the background: a fleet that is
down never slows or stops local allocation; 'ledger status' shows the lag.

Over TCP, writes and every route but the original tool's five (status,
allocations, one allocation, watchdog status, health-check) and /healthz
need "Authorization: Bearer TOKEN". The token is --token (LEDGER_TOKEN), else
the file 'token' in the data directory, made (mode 0600) at the first start;
the CLI reads it there. A request whose Host is not loopback, localhost or an
--allowed-host is refused (DNS rebinding), and so is a browser's
cross-origin write. Over ledger.sock the daemon's owner (and root) may
write, and the members of an --allow-group group; anyone else who can reach
the socket may only read. Every event records who wrote it.`, &c, false)
	fs.StringVar(&c.rng, "range", e.getenv("LEDGER_RANGE"), "managed port range LO-HI, set at start and recorded in the ledger when it changes (env LEDGER_RANGE)")
	allowEphemeral := allowEphemeralFlag(e, fs)
	fs.DurationVar(&wopts.Interval, "interval", watchdog.DefaultInterval, "watchdog check interval")
	fs.DurationVar(&wopts.StartGrace, "start-grace", watchdog.DefaultStartGrace, "time a new allocation may take to start listening")
	fs.IntVar(&wopts.Failures, "failures", watchdog.DefaultFailures, "failed checks in a row before a health change")
	fs.DurationVar(&wopts.Lease, "lease", watchdog.DefaultLease, "how long a port is kept that never got a PID or a listener")
	ps.register(e, fs)
	var allowedHosts stringList
	if v := e.getenv("LEDGER_ALLOWED_HOSTS"); v != "" {
		allowedHosts = strings.Split(v, ",")
	}
	fs.Var(&allowedHosts, "allowed-host", "a host name, besides loopback ones, that requests over TCP may name in their Host header; repeatable (env LEDGER_ALLOWED_HOSTS, comma-separated)")
	allowGroup := fs.String("allow-group", "", "a group whose members may write over ledger.sock (the socket becomes mode 0660, of that group)")
	acceptBroken := fs.Bool("accept-broken-chain", false, "start even though the log's hash chain does not hold (see `ledger verify`); the acceptance is recorded as an event")
	var ff fleetFlags
	addFleetConnFlags(e, fs, &ff)
	fs.StringVar(&ff.host, "host", e.getenv("LEDGER_HOST"), "this host's name in the fleet: 1-63 of A-Z a-z 0-9 - _ (default os.Hostname) (env LEDGER_HOST)")
	if err := parse(e, fs, args); err != nil {
		return err
	}
	if err := checkServeFleet(&ff); err != nil {
		return err
	}
	if err := ps.check(); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("serve takes no arguments, got %q", fs.Args())
	}
	tuneGC(e.getenv)
	addr := c.addr
	if !flagSet(fs, "addr") && e.getenv("LEDGER_ADDR") == "" {
		addr = DefaultAddr
	}
	if wopts.Interval <= 0 || wopts.Failures < 1 || wopts.StartGrace < 0 || wopts.Lease <= 0 {
		return usagef("--interval and --lease must be positive, --failures at least 1, --start-grace not negative")
	}
	if addr != "" {
		if err := httpapi.CheckListenAddr(addr, c.token); err != nil {
			return usagef("--addr: %s", ledger.ErrorMessage(err))
		}
	}
	var rng ledger.Range
	if c.rng != "" {
		r, err := ledger.ParseRange(c.rng)
		if err != nil {
			return usagef("--range: %s", ledger.ErrorMessage(err))
		}
		if err := checkNewRange("--range", r, *allowEphemeral); err != nil {
			return err
		}
		rng = r
	}

	sec := security{Token: c.token, AllowedHosts: allowedHosts, WriteGroup: -1}
	if *allowGroup != "" {
		gid, err := httpapi.LookupGroup(*allowGroup)
		if err != nil {
			return usagef("--allow-group: %s", ledger.ErrorMessage(err))
		}
		sec.WriteGroup = gid
	}

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger := slog.New(slog.NewTextHandler(e.stderr, nil))
	d, err := startDaemon(ctx, daemonConfig{Data: c.data, Addr: addr, Security: sec, Range: rng, Watchdog: wopts, Logger: logger, AcceptBrokenChain: *acceptBroken, AllowEphemeral: *allowEphemeral})
	if err != nil {
		return err
	}
	if err := d.startPortserver(ps); err != nil {
		d.shutdown()
		return err
	}
	if d.tcp != nil {
		if gone, err := writeAddrFile(d.layout, d.tcp.Addr().String()); err != nil {
			logger.Warn("the CLI will not find the daemon's TCP address", "file", addrFile(d.layout), "err", err)
		} else {
			defer gone()
		}
	}
	if gone, err := announce(runtimeDir(e.getenv), announcement{
		PID: os.Getpid(), Data: absDir(c.data), Socket: absPath(d.layout.Socket()), Addr: d.addrDesc(), Started: time.Now().UTC(),
	}); err != nil {
		logger.Warn("other shells will not find this daemon", "runtime_dir", runtimeDir(e.getenv), "err", err)
	} else {
		defer gone()
	}
	if err := d.startFleet(&ff); err != nil {
		d.shutdown()
		return err
	}
	logger.Info("serving", "data", c.data, "socket", d.layout.Socket(), "addr", d.addrDesc(), "range", d.svc.Registry().Range.String())
	if d.tcp != nil {
		// The link hands the token to the browser once (a session cookie),
		// for the dashboard's write buttons.
		logger.Info("dashboard", "url", httpapi.DashboardURL("http://"+d.tcp.Addr().String(), d.token))
	}
	<-ctx.Done()
	logger.Info("stopping")
	return d.shutdown()
}

func flagSet(fs *flag.FlagSet, name string) bool {
	found := false
	fs.Visit(func(f *flag.Flag) {
		if f.Name == name {
			found = true
		}
	})
	return found
}

// daemon is a running `ledger serve`.
type daemon struct {
	layout    ledger.Layout
	log       *ledger.Log
	svc       *commands.Ledger
	files     *projection.Files
	wd        *watchdog.Watchdog
	servers   []*http.Server
	listeners []net.Listener
	tcp       net.Listener
	ps        *portserver.Server // nil without --portserver
	logger    *slog.Logger
	token     string      // the bearer token over TCP
	stopping  atomic.Bool // the listeners are closed on purpose

	fleetMu sync.Mutex
	fleet   *fleetPart // nil unless --fleet
	metrics *httpapi.Metrics

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func (d *daemon) addrDesc() string {
	if d.tcp == nil {
		return "(unix socket only)"
	}
	return d.tcp.Addr().String()
}

// daemonConfig is what `ledger serve` starts a daemon with.
type daemonConfig struct {
	Data     string           // the data directory
	Addr     string           // the TCP address; "": the unix socket only
	Security security         // token, allowed hosts, write groups
	Range    ledger.Range     // recorded when it differs; zero: keep the ledger's
	Watchdog watchdog.Options // the watchdog's interval and thresholds
	Logger   *slog.Logger
	// AcceptBrokenChain starts on a log whose hash chain does not hold,
	// recording the acceptance (--accept-broken-chain).
	AcceptBrokenChain bool
	// AllowEphemeral lets PUT /api/ports/range take a range among the
	// kernel's ephemeral ports without asking (--allow-ephemeral).
	AllowEphemeral bool
}

// startDaemon opens everything and starts serving. On error nothing is left
// running or open.
func startDaemon(ctx context.Context, cfg daemonConfig) (_ *daemon, err error) {
	data, addr, sec, rng, wopts, logger := cfg.Data, cfg.Addr, cfg.Security, cfg.Range, cfg.Watchdog, cfg.Logger
	layout := ledger.Layout{Dir: data}
	if err := checkDataDir(data); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(data, 0o700); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	token, err := daemonToken(layout, sec.Token)
	if err != nil {
		return nil, err
	}
	if _, serr := os.Stat(layout.Socket()); serr == nil {
		if pid, err := httpapi.NewSocketClient(layout.Socket(), "").DaemonPID(ctx); err == nil {
			return nil, fmt.Errorf("a ledger daemon already serves %s: pid %d, answering on %s", data, pid, layout.Socket())
		}
	}
	log, err := ledger.Open(layout.DB(), ledger.Options{Timeout: time.Second})
	if errors.Is(err, ledger.ErrLocked) {
		return nil, fmt.Errorf("another ledger process holds %s: is a `ledger serve` for %s starting or stopping? (%w)", layout.DB(), data, err)
	}
	if err != nil {
		return nil, err
	}
	d := &daemon{layout: layout, log: log, logger: logger, token: token}
	defer func() {
		if err != nil {
			d.closeAll()
		}
	}()
	if err = checkChainAtStart(log, cfg.AcceptBrokenChain, logger); err != nil {
		return nil, err
	}
	metrics := httpapi.NewMetrics(httpapi.MetricsConfig{Version: Version, LogSize: log.Size})
	d.metrics = metrics
	if d.svc, err = commands.New(commands.Config{Log: log, Observer: metrics}); err != nil {
		return nil, err
	}
	if rng != (ledger.Range{}) {
		if err = d.svc.SetRange(ctx, rng); err != nil {
			return nil, err
		}
	}
	if d.files, err = projection.OpenFiles(layout, log); err != nil {
		return nil, fmt.Errorf("projections: %w", err)
	}
	// The files are caught up behind the API, by project below: a first
	// start on a large log without its files (after a restore, a large
	// import, or the logs folder deleted) writes gigabytes of JSONL, and
	// the log, not the files, answers every request meanwhile.
	wopts.Logger = logger
	wopts.OnSweep = metrics.Sweep
	d.wd = watchdog.New(d.svc, wopts)
	checkRange := commands.CheckEphemeral
	if cfg.AllowEphemeral {
		checkRange = nil
	}
	handler := httpapi.NewServer(httpapi.Config{
		CheckRange: checkRange,
		Service:    filesStatus{importer: importer{Ledger: d.svc, rebuild: d.rebuildFiles}, files: d.files.Progress}, Events: d.svc, Watchdog: d.wd, Token: token, Logger: logger,
		AllowedHosts: sec.allowedHosts(addr), WriteGroups: sec.writeGroups(),
		Metrics: metrics, Chain: logVerifier{log}, Backup: log,
		Fleet: fleetReader{d}, FleetStatus: d.fleetStatus,
	})

	if n := len(layout.Socket()); n > maxSocketPath {
		return nil, fmt.Errorf("the daemon's socket %s would be %d bytes long, over the %d that a unix socket path may have: choose a data directory with a shorter path (--data or LEDGER_DATA)", layout.Socket(), n, maxSocketPath)
	}
	_ = os.Remove(layout.Socket()) // a socket file left by a killed daemon: nobody answered on it above
	unixLn, err := net.Listen("unix", layout.Socket())
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", layout.Socket(), err)
	}
	if err = sec.socketMode(layout.Socket()); err != nil {
		unixLn.Close()
		return nil, fmt.Errorf("socket: %w", err)
	}
	d.listeners = []net.Listener{unixLn}
	if addr != "" {
		if d.tcp, err = net.Listen("tcp", addr); err != nil {
			unixLn.Close()
			os.Remove(layout.Socket())
			return nil, fmt.Errorf("listen on %s: %w", addr, err)
		}
		d.listeners = append(d.listeners, d.tcp)
	}

	runCtx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	d.wg.Add(2)
	go func() { defer d.wg.Done(); d.project(runCtx) }()
	go func() {
		defer d.wg.Done()
		if err := d.wd.Run(runCtx); err != nil {
			logger.Error("watchdog stopped", "err", err)
		}
	}()
	for _, ln := range d.listeners {
		srv := httpapi.NewHTTPServer(handler)
		srv.ErrorLog = slog.NewLogLogger(logger.Handler(), slog.LevelWarn)
		d.servers = append(d.servers, srv)
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) && !d.stopping.Load() {
				logger.Error("server stopped", "addr", ln.Addr().String(), "err", err)
			}
		}()
	}
	return d, nil
}

// rebuildFiles rewrites the file projections after an import; a failure
// is logged here and told to the caller.
func (d *daemon) rebuildFiles() error {
	if _, err := d.files.Mend(); err != nil {
		d.logger.Error("projections", "err", err)
		return err
	}
	return nil
}

// project keeps the file projections caught up: a commit wakes it, and one
// CatchUp covers everything committed since the last one. Catch-ups are at
// least projectEvery apart, so that under load the projections' own fsyncs
// (port_registry.json is rewritten atomically) do not compete with the
// writer's for the disk; a lone commit is projected at once.
func (d *daemon) project(ctx context.Context) {
	wait := time.NewTimer(time.Hour)
	wait.Stop()
	defer wait.Stop()
	// An import whose process was killed before it rebuilt the files left
	// its mark in the log: the past days' files are rebuilt first.
	if mended, err := d.files.Mend(); err != nil {
		d.logger.Error("projections", "err", err)
	} else if mended {
		d.logger.Info("rebuilt the projection files: the log's past changed (an import) since they were written")
	}
	for ctx.Err() == nil {
		// Not ctx: a subscription ended by ctx would look like a drop
		// and cost one more catch-up while the daemon stops.
		sub, err := d.svc.Subscribe(context.Background(), ledger.SubscribeRequest{Buffer: 4096})
		if err != nil {
			d.logger.Error("projections", "err", err)
			return
		}
		d.catchUp()
		last := time.Now()
		for open := true; open; {
			select {
			case <-ctx.Done():
				sub.Close()
				return
			case _, open = <-sub.C():
			}
			if since := time.Since(last); open && since < projectEvery {
				wait.Reset(projectEvery - since)
			gather:
				for {
					select {
					case <-ctx.Done():
						sub.Close()
						return
					case <-wait.C:
						break gather
					case _, open = <-sub.C():
						if !open {
							wait.Stop()
							break gather
						}
					}
				}
			}
			d.catchUp()
			last = time.Now()
		}
		sub.Close() // dropped: resubscribe; CatchUp reads the log, so nothing is missed
	}
}

// projectEvery is the shortest time between two catch-ups of the file
// projections in the daemon.
const projectEvery = 100 * time.Millisecond

func (d *daemon) catchUp() {
	start := time.Now()
	n, err := d.files.CatchUp()
	if err != nil {
		d.logger.Error("projections", "err", err)
		return
	}
	if took := time.Since(start); took > time.Second {
		d.logger.Info("projection files caught up", "events", n, "took", took.Round(time.Millisecond))
	}
}

// shutdown stops accepting connections, answers for shutdownDrain what
// comes on the open ones, then stops serving (answering in-flight
// requests), stops the watchdog and the writer, flushes the projections and
// removes the socket.
func (d *daemon) shutdown() error {
	d.stopping.Store(true)
	for _, ln := range d.listeners {
		ln.Close() // the unix socket file goes with it
	}
	d.stopPortserver()
	time.Sleep(shutdownDrain)
	ctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	var errs []error
	for _, srv := range d.servers {
		if err := srv.Shutdown(ctx); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, fmt.Errorf("shutdown: %w", err))
			srv.Close()
		}
	}
	d.cancel()
	d.wg.Wait()
	d.stopFleet()
	d.closeAll()
	return errors.Join(errs...)
}

// closeAll closes what was opened, in order.
func (d *daemon) closeAll() {
	if d.svc != nil {
		d.svc.Close()
	}
	if d.files != nil {
		if _, err := d.files.CatchUp(); err != nil {
			d.logger.Error("projections", "err", err)
		}
		d.files.Close()
	}
	if d.log != nil {
		d.log.Close()
	}
	os.Remove(d.layout.Socket())
}

// security is what `ledger serve` is told about who may do what.
type security struct {
	Token        string   // --token; "" reads or makes the data directory's token file
	AllowedHosts []string // --allowed-host
	WriteGroup   int      // --allow-group's gid; -1 for none
}

// allowedHosts adds to the operator's names the host of a specific
// listen address that is not loopback (clients on other machines name it).
func (s security) allowedHosts(addr string) []string {
	hosts := slices.Clone(s.AllowedHosts)
	if host, _, err := net.SplitHostPort(addr); err == nil && host != "" {
		if ip := net.ParseIP(host); ip == nil || !ip.IsUnspecified() {
			hosts = append(hosts, host)
		}
	}
	return hosts
}

// writeGroups returns the gids that may write over the socket.
func (s security) writeGroups() []int {
	if s.WriteGroup < 0 {
		return nil
	}
	return []int{s.WriteGroup}
}

// socketMode sets the socket's mode: 0600, or 0660 of the allowed group.
// The daemon decides by the caller's uid either way (SO_PEERCRED); the
// mode only keeps out those who have nothing to do there.
func (s security) socketMode(path string) error {
	if !permBits {
		return nil // Windows: the data directory's ACL keeps others out
	}
	if s.WriteGroup < 0 {
		return os.Chmod(path, 0o600)
	}
	if err := os.Chown(path, -1, s.WriteGroup); err != nil {
		return err
	}
	return os.Chmod(path, 0o660)
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }

func (l *stringList) Set(v string) error {
	*l = append(*l, v)
	return nil
}
