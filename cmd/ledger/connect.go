package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/portledger/portledger/commands"
	"github.com/portledger/portledger/httpapi"
	"github.com/portledger/portledger/internal/flagdoc"
	"github.com/portledger/portledger/ledger"
	"github.com/portledger/portledger/projection"
	"github.com/portledger/portledger/watchdog"
)

// common holds the flags every subcommand takes.
type common struct {
	data  string
	addr  string
	token string
	rng   string
	json  bool
	// reads is set by a subcommand that only reads: it never creates a
	// data directory (a mistyped --data must not leave a ledger behind).
	reads bool

	env *env          // the process's streams and environment
	fs  *flag.FlagSet // the subcommand's flags, to tell a flag given from a default
}

// dataGiven reports whether the user chose the data directory (--data or
// LEDGER_DATA) rather than taking the default.
func (c *common) dataGiven() bool {
	if c.env != nil && c.env.getenv("LEDGER_DATA") != "" {
		return true
	}
	return c.fs != nil && flagSet(c.fs, "data")
}

// note prints a line for the person at the terminal on stderr.
func (c *common) note(format string, args ...any) {
	if c.env != nil {
		fmt.Fprintf(c.env.stderr, "ledger: "+format+"\n", args...)
	}
}

// newFlags returns a flag set for a subcommand with the common flags. usage
// is the one-line synopsis; help explains the subcommand.
func newFlags(e *env, name, synopsis, help string, c *common, withJSON bool) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	c.env, c.fs = e, fs
	if name != "version" { // the one subcommand that reads no ledger
		fs.StringVar(&c.data, "data", ledger.DefaultDataDir(e.getenv), "data directory (env LEDGER_DATA)")
	}
	if !offline[strings.Fields(name)[0]] {
		fs.StringVar(&c.addr, "addr", e.getenv("LEDGER_ADDR"), "daemon address host:port; default: the daemon's unix socket in the data directory (env LEDGER_ADDR)")
		fs.StringVar(&c.token, "token", e.getenv("LEDGER_TOKEN"), "bearer token for the daemon's API (env LEDGER_TOKEN)")
	}
	if withJSON {
		fs.BoolVar(&c.json, "json", false, "print JSON for scripts")
	}
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: ledger %s\n\n%s\n", synopsis, strings.TrimSpace(help))
		n := 0
		fs.VisitAll(func(*flag.Flag) { n++ })
		if n > 0 {
			fmt.Fprintf(fs.Output(), "\nFlags:\n")
			flagdoc.Print(fs.Output(), fs)
		}
	}
	return fs
}

// offline are the subcommands that never speak to a daemon: their help
// lists no --addr or --token.
var offline = map[string]bool{"version": true, "replay": true, "completion": true, "fleet": true}

// parse parses args. --help prints the subcommand's help on stdout and
// returns errHelp, which Run turns into success.
func parse(e *env, fs *flag.FlagSet, args []string) error {
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	fs.SetOutput(e.stderr)
	if errors.Is(err, flag.ErrHelp) {
		fs.SetOutput(e.stdout)
		fs.Usage()
		return errHelp
	}
	if err != nil {
		hint := fmt.Sprintf("Run 'ledger %s --help' for usage.", fs.Name())
		if strings.HasSuffix(err.Error(), "not defined: -range") {
			hint = "The managed range is the ledger's, the same for every command: 'ledger range' shows it, 'ledger range set LO-HI' changes it. " + hint
		}
		return usageError{msg: twoDashes(err.Error()), hint: hint}
	}
	return nil
}

// flagInMessage is a flag's name as the flag package's errors spell it,
// with one dash.
var flagInMessage = regexp.MustCompile(`(^|[ :]) ?-([a-z][a-z0-9-]*)`)

// twoDashes spells the flags in a flag package error as the docs and the
// help do: "flag provided but not defined: --range".
func twoDashes(msg string) string {
	return flagInMessage.ReplaceAllStringFunc(msg, func(m string) string {
		i := strings.LastIndex(m, "-")
		return m[:i] + "--" + m[i+1:]
	})
}

// parseInterleaved is parse for a subcommand whose flags may follow its
// positional arguments, as in `ledger release 8000 --reason R`; the flag
// package alone stops at the first argument that is not a flag. A "--"
// ends the flags. It returns the positional arguments.
func parseInterleaved(e *env, fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		// A negative number is an argument (a PID that is wrong), not a flag.
		for len(args) > 0 && len(args[0]) > 1 && args[0][0] == '-' && strings.Trim(args[0][1:], "0123456789") == "" {
			pos, args = append(pos, args[0]), args[1:]
		}
		if err := parse(e, fs, args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if len(args) > len(rest) && args[len(args)-len(rest)-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// errHelp ends a subcommand after printing its help.
var errHelp = errors.New("help printed")

// backend is what a subcommand talks to: a client of a running daemon, or
// the ledger file opened in this process (the embedded mode). dial chooses
// once; the subcommands use the same fields either way and cannot tell.
type backend struct {
	ledger.Service
	events ledger.EventService // the same side as Service
	// sweep runs one watchdog sweep now: the daemon's (with its own
	// counts of failed checks), or a one-shot one in this process over the
	// open file, which concludes after failures failed checks of its own.
	sweep func(ctx context.Context, failures int) (ledger.SweepResult, error)
	// verify walks the log's hash chain: through the daemon, or in the file.
	verify func(context.Context) (ledger.ChainReport, error)
	client *httpapi.Client  // set when a daemon answered
	local  *commands.Ledger // set in embedded mode
	log    *ledger.Log      // set in embedded mode
	layout ledger.Layout
	// readOnly is set when the file system of the data directory is
	// read-only: the file projections are left as they are.
	readOnly bool
}

// remote is the backend of a daemon that answered.
func remote(cl *httpapi.Client, layout ledger.Layout) *backend {
	return &backend{Service: cl, events: cl, sweep: func(ctx context.Context, _ int) (ledger.SweepResult, error) { return cl.HealthCheck(ctx) }, verify: cl.VerifyChain, client: cl, layout: layout}
}

// embedded is the backend of the ledger file opened in this process. An
// import rebuilds the file projections here, as the daemon does for its
// callers.
func embedded(local *commands.Ledger, log *ledger.Log, layout ledger.Layout, readOnly bool) *backend {
	return &backend{
		Service: importer{Ledger: local, rebuild: func() error { return rebuildFiles(layout, log) }},
		events:  local,
		sweep: func(ctx context.Context, failures int) (ledger.SweepResult, error) {
			return watchdog.New(local, watchdog.Options{Failures: failures}).Sweep(ctx)
		},
		verify:   func(context.Context) (ledger.ChainReport, error) { return verifyLog(log) },
		local:    local,
		log:      log,
		layout:   layout,
		readOnly: readOnly,
	}
}

// rebuildFiles rewrites the file projections of layout from log when an
// import changed the past (projection.Files.Mend, as the daemon does):
// nobody else writes them while this process holds the ledger.
func rebuildFiles(layout ledger.Layout, log *ledger.Log) error {
	f, err := projection.OpenFiles(layout, log)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.Mend()
	return err
}

// embeddedLockTimeout is how long the embedded mode waits for another
// ledger process to let go of the file. Many CLI calls at once queue on the
// lock; each holds it for milliseconds.
const embeddedLockTimeout = 10 * time.Second

// connect returns the daemon's client when a daemon answers (on --addr if
// given, else on the unix socket of the data directory), and otherwise
// opens the ledger file in this process. An explicit --addr that does not
// answer is an error, never a silent fallback to another ledger.
func connect(ctx context.Context, c *common) (*backend, error) {
	return dial(ctx, c, ledger.Layout{Dir: c.data})
}

func dial(ctx context.Context, c *common, layout ledger.Layout) (*backend, error) {
	if err := checkDataDir(c.data); err != nil {
		return nil, err
	}
	if c.addr != "" {
		base := c.addr
		if !strings.Contains(base, "://") {
			base = "http://" + base
		}
		token, err := clientToken(c)
		if err != nil {
			return nil, err
		}
		cl := httpapi.NewClient(base, token)
		if err := cl.Ping(ctx); err != nil {
			return nil, fmt.Errorf("no ledger daemon answers at %s: %w", c.addr, err)
		}
		return remote(cl, layout), nil
	}
	if cl, err := socketClient(ctx, layout, c.token); err != nil {
		return nil, err
	} else if cl != nil {
		return remote(cl, layout), nil
	}
	// No daemon serves this data directory. One of this user's daemons may
	// serve another: a shell without LEDGER_DATA goes to it; one that named
	// its directory gets it, and is told about the other.
	var elsewhere []announcement
	if c.env != nil {
		elsewhere = others(liveDaemons(ctx, runtimeDir(c.env.getenv), c.token), c.data)
	}
	if len(elsewhere) == 1 && !c.dataGiven() {
		a := elsewhere[0]
		cl := httpapi.NewSocketClient(a.Socket, c.token)
		c.note("no --data or LEDGER_DATA given and no daemon serves %s: using the daemon (pid %d) that serves %s", c.data, a.PID, a.Data)
		return remote(cl, ledger.Layout{Dir: a.Data}), nil
	}
	if c.reads {
		if _, err := os.Stat(c.data); errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("no ledger in %s: the directory does not exist and no daemon serves it (a read never creates one; check --data or LEDGER_DATA, or start with 'ledger serve' or 'ledger allocate')", absDir(c.data))
		}
	}
	log, readOnly, cl, err := openOrFind(ctx, layout, c.token)
	if cl != nil {
		return remote(cl, layout), nil
	}
	if err != nil {
		if errors.Is(err, ledger.ErrLocked) {
			return nil, fmt.Errorf("the ledger %s is held by another process and no daemon answers on %s: %w", layout.DB(), layout.Socket(), err)
		}
		return nil, err
	}
	if len(elsewhere) > 0 {
		c.note("used the ledger in %s (no daemon serves it), while another ledger is live: %s; pass --data to choose", absDir(c.data), describeDaemons(elsewhere))
	}
	local, err := commands.New(commands.Config{Log: log})
	if err != nil {
		log.Close()
		return nil, err
	}
	return embedded(local, log, layout, readOnly), nil
}

// socketClient returns a client of the daemon that answers on the data
// directory's socket, or nil. A socket file nobody answers on is left by a
// daemon that was killed. What answers as another user (SO_PEERCRED) is an
// error: the CLI sends it nothing. Where the OS cannot name who listens on
// a unix socket (Windows), the daemon is reached over loopback TCP with the
// token instead (tcpClient).
func socketClient(ctx context.Context, layout ledger.Layout, token string) (*httpapi.Client, error) {
	if !peerCredentials {
		return tcpClient(ctx, layout, token)
	}
	if _, err := os.Stat(layout.Socket()); err != nil {
		return nil, nil
	}
	cl := httpapi.NewSocketClient(layout.Socket(), token)
	if err := cl.Ping(ctx); err != nil {
		if errors.Is(err, httpapi.ErrUntrustedDaemon) {
			return nil, err
		}
		return nil, nil
	}
	return cl, nil
}

// lockPoll is how long one attempt to take the ledger file's lock waits
// before the CLI looks for a daemon again.
const lockPoll = 200 * time.Millisecond

// openOrFind opens the ledger file, waiting up to embeddedLockTimeout for
// another process to let go of it. While it waits it looks for a daemon on
// the data directory's socket again: the process that holds the lock may be
// a `ledger serve` that is starting, and once it answers the command goes
// through it (cl is then set).
func openOrFind(ctx context.Context, layout ledger.Layout, token string) (log *ledger.Log, readOnly bool, cl *httpapi.Client, err error) {
	deadline := time.Now().Add(embeddedLockTimeout)
	for {
		wait := min(lockPoll, max(time.Until(deadline), time.Millisecond))
		log, err = ledger.Open(layout.DB(), ledger.Options{Timeout: wait})
		readOnly = errors.Is(err, syscall.EROFS)
		if readOnly {
			// A read-only file system still answers reads; a write then
			// fails with the file system's own words.
			log, err = ledger.Open(layout.DB(), ledger.Options{Timeout: wait, ReadOnly: true})
		}
		if !errors.Is(err, ledger.ErrLocked) || time.Now().After(deadline) {
			return log, readOnly, nil, err
		}
		if cl, serr := socketClient(ctx, layout, token); serr != nil {
			return nil, false, nil, serr
		} else if cl != nil {
			return nil, false, cl, nil
		}
		if ctx.Err() != nil {
			return nil, false, nil, err
		}
	}
}

// Close brings the file projections up to date (embedded mode) and lets go
// of the ledger.
func (b *backend) Close() error {
	if b.local == nil {
		return nil
	}
	b.local.Close()
	if b.readOnly {
		return b.log.Close()
	}
	var errs []error
	if f, err := projection.OpenFiles(b.layout, b.log); err != nil {
		errs = append(errs, fmt.Errorf("projections: %w", err))
	} else {
		if _, err := f.Mend(); err != nil {
			errs = append(errs, fmt.Errorf("projections: %w", err))
		}
		if _, err := f.CatchUp(); err != nil {
			errs = append(errs, fmt.Errorf("projections: %w", err))
		}
		f.Close()
	}
	errs = append(errs, b.log.Close())
	return errors.Join(errs...)
}
