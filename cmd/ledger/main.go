// Command ledger hands out TCP ports from a managed range, records who holds
// each one and why, and answers who held any port at any moment in the past.
// See `ledger help`.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/portledger/portledger/ledger"
)

// Version is set at build time with -ldflags "-X main.Version=...".
var Version = "dev"

func main() {
	err := Run(context.Background(), os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	os.Exit(report(err, os.Stderr))
}

// report prints err as `ledger: ...` and returns the exit code: 0 for
// success, 2 for usage errors, the child's code for `ledger run`, else 1.
func report(err error, stderr io.Writer) int {
	if err == nil {
		return 0
	}
	var ex exitError
	if errors.As(err, &ex) {
		if ex.msg != "" {
			fmt.Fprintf(stderr, "ledger: %s\n", ex.msg)
		}
		return ex.code
	}
	var u usageError
	if errors.As(err, &u) {
		fmt.Fprintf(stderr, "ledger: %s\n", u.msg)
		if u.hint != "" {
			fmt.Fprintln(stderr, u.hint)
		}
		return 2
	}
	msg := err.Error()
	if ledger.ErrorCode(err) != ledger.EINTERNAL {
		msg = ledger.ErrorMessage(err)
	}
	fmt.Fprintf(stderr, "ledger: %s\n", escapeN(msg, maxErrorShown))
	return 1
}

// usageError is a mistake in the command line: exit status 2.
type usageError struct {
	msg  string
	hint string
}

func (u usageError) Error() string { return u.msg }

func usagef(format string, args ...any) error {
	return usageError{msg: fmt.Sprintf(format, args...)}
}

// exitError carries an exit code chosen by the subcommand (`ledger run`
// exits with its child's code).
type exitError struct {
	code int
	msg  string
}

func (e exitError) Error() string { return fmt.Sprintf("exit %d: %s", e.code, e.msg) }

// subcommand is one `ledger X`.
type subcommand struct {
	name    string
	summary string
	run     func(ctx context.Context, env *env, args []string) error
}

func subcommands() []subcommand {
	return []subcommand{
		{"serve", "run the daemon: own the ledger, serve the REST API and watch the holders", runServe},
		{"allocate", "allocate a port for a service and print it", runAllocate},
		{"register-pid", "record the process that holds a port", runRegisterPID},
		{"release", "free a port", runRelease},
		{"status", "show the registry (now, or --at a moment of the past)", runStatus},
		{"history", "list the events of a port, a service or a time window", runHistory},
		{"who", "say who held a port (now, or --at a moment of the past)", runWho},
		{"env", "print LEDGER_PORT_<SERVICE>=PORT for every held port (shell, dotenv, json)", runEnvCmd},
		{"why", "say what is on a port: the OS's view and the ledger's, and what to do when they disagree", runWhy},
		{"usage", "show how each service used its ports over a window", runUsage},
		{"import", "import the original port manager's registry and logs", runImport},
		{"replay", "rebuild port_registry.json and the JSONL logs from the event log", runReplay},
		{"compact", "give back the disk space the ledger file keeps (offline)", runCompact},
		{"check", "run one watchdog sweep now", runCheck},
		{"verify", "walk the log's hash chain and name the first broken link", runVerify},
		{"range", "show the managed port range and its history; 'range set LO-HI' changes it", runRangeCmd},
		{"run", "run a command on a port of its own: allocate, start, watch, release", runRun},
		{"events", "print events after a position, and follow new ones", runEvents},
		{"fleet", "read the fleet: every host's allocations, now or in the past (see ledger hub)", runFleet},
		{"hub", "run the fleet's NATS JetStream hub (the ledger-hub program)", runHub},
		{"backup", "write a consistent copy of the ledger file, while the daemon serves", runBackup},
		{"restore", "put a backup back into a data directory no daemon serves", runRestore},
		{"service", "install or uninstall 'ledger serve' as a systemd user service", runServiceCmd},
		{"completion", "print the shell completion script (bash, zsh, fish)", runCompletion},
		{"version", "print the version", runVersion},
	}
}

// env is what a subcommand needs from the process.
type env struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	getenv func(string) string
}

// Run runs the ledger command line. main only calls Run, with the process's
// arguments, environment (os.Getenv) and standard streams; tests call it too,
// with an environment of their own, so they can run in parallel. Only
// `ledger run` reads the process's environment, to hand it to its child.
func Run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr, getenv: getenv}
	// What this process writes itself (no daemon, or the daemon's own
	// setup) names this process; a daemon names its callers instead.
	ctx = ledger.WithActor(ctx, ledger.Actor{Via: ledger.ViaLocal, UID: os.Getuid(), PID: os.Getpid()})
	if len(args) == 0 {
		var b strings.Builder
		printShortUsage(&b)
		return usageError{msg: "no subcommand given", hint: strings.TrimRight(b.String(), "\n")}
	}
	name := args[0]
	switch name {
	case "help", "-h", "-help", "--help":
		if name == "help" && len(args) > 1 {
			// `ledger help run` is `ledger run --help`.
			return Run(ctx, []string{args[1], "--help"}, getenv, stdin, stdout, stderr)
		}
		printUsage(stdout)
		return nil
	case "-v", "--version":
		name = "version"
	case "__complete": // hidden: what the completion scripts ask
		return runComplete(ctx, e, args[1:])
	}
	for _, sc := range subcommands() {
		if sc.name == name {
			err := sc.run(ctx, e, args[1:])
			if errors.Is(err, errHelp) {
				return nil
			}
			return err
		}
	}
	hint := "Run 'ledger help' for the list."
	if near := nearest(name); near != "" {
		hint = fmt.Sprintf("Did you mean 'ledger %s'? %s", near, hint)
	}
	return usageError{msg: fmt.Sprintf("unknown subcommand %q", name), hint: hint}
}

// printShortUsage lists the subcommands, for a bare `ledger`.
func printShortUsage(w io.Writer) {
	fmt.Fprintln(w, "Usage: ledger <subcommand> [flags] [args]")
	fmt.Fprintln(w)
	for _, sc := range subcommands() {
		fmt.Fprintf(w, "  %-13s %s\n", sc.name, sc.summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Run 'ledger help' for more, 'ledger help <subcommand>' for one subcommand's flags.")
}

// nearest returns the subcommand a mistyped name most likely meant: the
// closest by edit distance, at most a third of the name's length away, or
// one that the name begins; "" when none is close.
func nearest(name string) string {
	best, bestD := "", len(name)/3+2 // accept a distance up to len/3+1
	for _, sc := range subcommands() {
		if len(name) >= 2 && strings.HasPrefix(sc.name, name) {
			return sc.name
		}
		if d := editDistance(name, sc.name); d < bestD {
			best, bestD = sc.name, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func printUsage(w io.Writer) {
	var b strings.Builder
	b.WriteString(`ledger hands out TCP ports from a managed range (default 8000-8100), records who
holds each one and why, watches the holders and frees the ports of dead
services. Every change is an event in an append-only log; the registry,
port_registry.json and the daily JSONL logs are rebuilt from it.

Usage: ledger <subcommand> [flags] [args]

Subcommands:
`)
	for _, sc := range subcommands() {
		fmt.Fprintf(&b, "  %-13s %s\n", sc.name, sc.summary)
	}
	b.WriteString(`
Run 'ledger <subcommand> --help' for its flags. Every subcommand takes --data.
When 'ledger serve' runs, other subcommands go through it; otherwise they open
the ledger file themselves.

Environment: LEDGER_DATA (--data), LEDGER_ADDR (--addr), LEDGER_TOKEN (--token),
LEDGER_SERVICE (--service), LEDGER_RANGE (serve --range, at start only),
LEDGER_PORTSERVER (serve --portserver).
`)
	io.WriteString(w, b.String())
}
